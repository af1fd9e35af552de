"""Where outputs land: a post's outputs are keyed by its id, and the key picks the partition.

The worker picks partitions itself (to send record batches): decisions go to the post's own
partition number where the post is keyed by its id, and everything else gets Kafka's default
partitioner, exactly as a plain keyed send would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from posts import encode, post, unique_texts

from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.replay import produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

KEYED, OTHER_KEY, BROKEN = 300, 20, 10


def default_partition(key: bytes, count: int) -> int:
    every = list(range(count))
    return int(DefaultPartitioner()(key, every, every))


Got = list[tuple[str, int, bytes, bytes]]  # topic, partition, key, value


async def read(settings: Settings, topics: list[str], n: int) -> Got:
    consumer = AIOKafkaConsumer(
        *topics, **client_options(settings), auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: Got = []
    try:
        async with asyncio.timeout(120):
            while len(got) < n:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    got += [(r.topic, r.partition, r.key, r.value) for r in records]
    finally:
        await consumer.stop()
    return got


async def test_each_output_lands_where_its_key_puts_it(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(batch_max=64)
    await create_topics(settings, replication_factor=1)  # the catalogue's 12, 12, 3, 3
    texts = unique_texts(KEYED + OTHER_KEY)
    keyed = [encode(post(f"k-{i}", texts[i])) for i in range(KEYED)]
    # Posts keyed by something else (an author, say): their decisions still follow post_id.
    other = [encode(post(f"o-{i}", texts[KEYED + i])) for i in range(OTHER_KEY)]
    broken = [b'{"post_id": "b-%d", "tenant": "t"}' % i for i in range(BROKEN)]

    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, keyed)
        producer = AIOKafkaProducer(**client_options(settings))
        await producer.start()
        try:
            for i, value in enumerate(other + broken):
                await producer.send_and_wait(settings.posts_topic, value, key=b"author-%d" % i)
        finally:
            await producer.stop()
        topics = [settings.decisions_topic, settings.dead_letter_topic]
        got = await read(settings, topics, KEYED + OTHER_KEY + BROKEN)

    decisions = [g for g in got if g[0] == settings.decisions_topic]
    letters = [g for g in got if g[0] == settings.dead_letter_topic]
    assert len(decisions) == KEYED + OTHER_KEY
    assert len(letters) == BROKEN
    for _, partition, key, value in decisions:
        assert key == orjson.loads(value)["post_id"].encode()
        assert partition == default_partition(key, 12), key
    for _, partition, key, _ in letters:
        assert partition == default_partition(key, 3), key
