"""``modfleet bench`` end to end at a tiny size, and its paced load on a real broker.

Nothing here asserts a rate: the machine running the tests decides those. What is checked is
that every stage ran on every post and that the numbers are there and sane.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from modfleet.bench import corpus
from modfleet.bench.kafka_io import produce
from modfleet.bench.load import paced_run
from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.settings import Settings
from modfleet.stack.services import free_port

pytestmark = pytest.mark.integration

_POSTS = 200


def test_modfleet_bench_runs_every_stage_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = _bench(tmp_path, ["--posts", str(_POSTS), "--repeat", "1", "--latency-seconds", "0"])
    assert "c/b" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # no faust data dirs

    data = json.loads(out.read_text())
    for key in "abcde":
        stage = data["stages"][key]
        assert stage["posts"] == _POSTS, key
        assert stage["rate"] > 0, key
    c_notes = data["stages"]["c"]["notes"]
    # Every post of (c) is a repeat, served from Redis, unless a batch's call ran past the
    # cache budget on a loaded machine, which the worker counts and the report warns of.
    if c_notes["cache_errors"] + c_notes["cache_skipped"] == 0:
        assert c_notes["cache_hits"] == _POSTS, c_notes
    else:
        assert "Redis calls failed or skipped" in done.stdout
    for key in "abcde":  # CPU per post of the stage's own process, and the broker's
        assert data["stages"][key]["cpu"]["us_per_post"]["stage"] >= 0, key
    for key in "abcd":
        assert "broker" in data["stages"][key]["cpu"]["us_per_post"], key
    assert data["our_cost_us_per_post"] is not None
    assert "our cost: (c) worker" in done.stdout
    assert data["stages"]["d"]["notes"]["cache_misses"] == _POSTS
    for key in "cd":
        trips, notes = data["redis"][key], data["stages"][key]["notes"]
        assert trips["batches"] > 0
        # Every batch looked its posts up, or the worker counted why not: a call past the cache
        # budget on a loaded machine (an error) or one skipped while the breaker was open.
        unasked = notes["cache_errors"] + notes["cache_skipped"]
        assert trips["mget_calls"] <= trips["batches"] <= trips["mget_calls"] + unasked, notes
        assert 0 < trips["per_batch"] <= 2
    ratios = data["ratios"]
    assert ratios["c_over_b"] > 0
    assert ratios["d_over_floor"] > 0
    assert [g["verdict"] for g in data["goals"]][-1] == "-"  # no soak asked for
    assert data["machine"]["cpus"] >= 1
    cores = data["machine"]["cores"]
    if data["machine"]["cpus"] >= 2:
        # The worker and the passthrough ran on cores the broker and Redis were kept off.
        helpers = set(cores["broker"]) | set(cores.get("redis", [])) | set(cores["redis_proxy"])
        for key in "bcd":
            measured = set(data["stages"][key]["notes"]["cpus"])
            assert measured, (key, cores)
            assert not measured & helpers, (key, measured, cores)
        assert "measured process on CPUs" in done.stdout
    else:
        assert cores["split"].startswith("shared")
    tracing = data["tracing"]
    assert tracing["posts"] == _POSTS
    assert tracing["on_us"] > 0
    assert tracing["off_us"] > 0
    # Where a post's time goes in process: the model runs on new texts only.
    cold, hit = tracing["cold_stages_us"], tracing["hit_stages_us"]
    assert {"validate", "cache lookup", "inference", "policy"} <= cold.keys()
    assert all(us > 0 for name, us in cold.items() if name != "other")
    assert cold["inference"] > hit.get("inference", 0.0)
    assert "new texts" in done.stdout
    assert "all hits" in done.stdout
    assert "(f) tracing" in done.stdout


def test_bench_on_an_external_broker_keeps_to_topics_of_its_own_and_deletes_them(
    tmp_path: Path, kafka_url: str
) -> None:
    # Someone else's topic on the same broker, named as the embedded run names its posts: the
    # run must neither read it nor delete it.
    theirs = Settings(broker_url=kafka_url, posts_topic="bench.posts")
    asyncio.run(create_topics(theirs, replication_factor=1, partitions=1))
    asyncio.run(produce(theirs, "bench.posts", corpus.posts(corpus.texts(30, run="x"), "x")))
    # Tansu's group timings, as an operator would set them for their broker.
    env = {
        "MODFLEET_BROKER_URL": kafka_url,
        "MODFLEET_BROKER_SESSION_TIMEOUT_S": "6",
        "MODFLEET_BROKER_HEARTBEAT_INTERVAL_S": "1",
        "MODFLEET_CONSUMER_FETCH_MAX_WAIT_MS": "100",
    }
    command = ["--external-broker", "--posts", "100", "--repeat", "1"]
    done = _bench(tmp_path, [*command, "--latency-seconds", "2", "--pace", "100"], env)
    data = json.loads((tmp_path / "bench.json").read_text())
    for key in "abcd":  # exactly the run's own posts, none of the other topic's
        assert data["stages"][key]["posts"] == 100, key
        assert "broker" not in data["stages"][key]["cpu"]["us_per_post"], key
    assert data["latency"]["worker"]["received"] == data["latency"]["worker"]["sent"] > 0
    host = kafka_url.removeprefix("kafka://")
    assert data["machine"]["broker"] == f"external: {host}"
    assert f"broker: external: {host}" in done.stdout
    prefix = data["config"]["topic_prefix"]
    assert prefix.startswith("bench.")
    left = asyncio.run(_topics(theirs))
    assert "bench.posts" in left
    assert not [t for t in left if t.startswith(prefix + ".")]


def test_bench_on_an_external_broker_that_is_not_there_says_so_and_exits(
    tmp_path: Path,
) -> None:
    url = f"kafka://127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODFLEET_")}
    command = [sys.executable, "-m", "modfleet", "bench", "--external-broker", "--posts", "100"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env=env | {"MODFLEET_BROKER_URL": url},
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    assert f"modfleet bench: cannot reach Kafka at {url}" in done.stderr
    assert not (tmp_path / "bench.json").exists()


def _bench(
    cwd: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``modfleet bench ARGS --out bench.json`` in ``cwd``, with only ``env`` of MODFLEET_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODFLEET_")}
    command = [sys.executable, "-m", "modfleet", "bench", *args, "--out", "bench.json"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        env=clean | (env or {}),
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    return done


async def _topics(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def test_paced_run_sends_at_the_rate_and_matches_what_comes_back(
    make_settings: Callable[..., Settings],
) -> None:
    # The posts topic stands in for an output topic: each post is its own "output".
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    rss: list[int] = []

    def fake_rss() -> int:
        rss.append(1000 + len(rss))
        return rss[-1]

    paced = await paced_run(
        settings,
        corpus.endless("smoke"),
        "smoke",
        rate=200,
        seconds=1.0,
        rss=fake_rss,
        output_topic=settings.posts_topic,
    )
    assert 0 < paced.sent <= 200  # never ahead of the pace; how close to it is the machine's
    assert len(paced.latencies_s) == paced.sent
    assert all(lat >= 0 for lat in paced.latencies_s)
    assert paced.percentile_ms(0.99) >= paced.percentile_ms(0.5) >= 0
    assert paced.rss_kib[0][1] == 1000
    assert paced.rss_kib[-1][0] == 1.0
