"""``modfleet bench`` end to end at a tiny size, and its paced load on a real broker.

Nothing here asserts a rate: the machine running the tests decides those. What is checked is
that every stage ran on every post and that the numbers are there and sane.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bench_cli import run_bench

from modfleet.bench import corpus
from modfleet.bench.load import paced_run
from modfleet.contracts.admin import create_topics
from modfleet.settings import Settings

pytestmark = pytest.mark.integration

_POSTS = 200


def test_modfleet_bench_runs_every_stage_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run_bench(tmp_path, ["--posts", str(_POSTS), "--repeat", "1", "--latency-seconds", "0"])
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
