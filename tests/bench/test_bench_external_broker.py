"""``modfleet bench --external-broker``: a broker of one's own, shared with others' topics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from bench_cli import run_bench

from modfleet.bench import corpus
from modfleet.bench.kafka_io import produce
from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.settings import Settings
from modfleet.stack.services import free_port

pytestmark = pytest.mark.integration


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
    done = run_bench(tmp_path, [*command, "--latency-seconds", "2", "--pace", "100"], env)
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
    env = {"MODFLEET_BROKER_URL": url}
    done = run_bench(tmp_path, ["--external-broker", "--posts", "100"], env, ok=False)
    assert done.returncode == 1
    assert f"modfleet bench: cannot reach Kafka at {url}" in done.stderr
    assert not (tmp_path / "bench.json").exists()


async def _topics(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()
