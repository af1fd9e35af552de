"""A post whose header key is not UTF-8, through a real broker and a real worker.

aiokafka's producer cannot send such a key, so the batch is written here (the key's bytes put
in after building, the CRC made good again) and sent with a plain ProduceRequest, as a
librdkafka or raw-protocol producer would. The worker must decide it and every post after it
on the same partition; before, it never got past that batch."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from posts import encode, post, unique_texts
from raw_batches import batch, produce_raw

from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

RAW, AFTER = 5, 5  # posts in the hand-made batch (the third is hostile), then ordinary ones
HOSTILE = 2


async def outputs(settings: Settings, done: Callable[[list[Any]], bool]) -> list[Any]:
    topics = [settings.decisions_topic, settings.escalations_topic, settings.dead_letter_topic]
    consumer = AIOKafkaConsumer(
        *topics, **client_options(settings), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: list[Any] = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and not done(seen):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                seen.extend(records)
        for _ in range(5):  # a moment more for a duplicate that would break "exactly once"
            for records in (await consumer.getmany(timeout_ms=300)).values():
                seen.extend(records)
    finally:
        await consumer.stop()
    return seen


async def test_a_post_whose_header_key_is_not_utf8_is_decided_and_its_partition_moves_on(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    ids = [f"hk-{i}" for i in range(RAW + AFTER)]
    values = [
        encode(post(pid, text)) for pid, text in zip(ids, unique_texts(len(ids)), strict=True)
    ]

    def decided(seen: list[Any]) -> bool:
        return {
            orjson.loads(r.value)["post_id"] for r in seen if r.topic == settings.decisions_topic
        } >= set(ids)

    with worker_process(settings, tmp_path / "worker.log") as worker:
        await asyncio.sleep(2)  # in the group before the first post
        await produce_raw(
            settings, settings.posts_topic, batch(0, RAW, {HOSTILE}, values=values[:RAW])
        )
        producer = AIOKafkaProducer(**client_options(settings))
        await producer.start()
        try:
            for later in values[RAW:]:
                await producer.send_and_wait(settings.posts_topic, later, partition=0)
        finally:
            await producer.stop()
        seen = await outputs(settings, decided)
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert worker.poll() is None, log[-3000:]

    dead = [orjson.loads(r.value) for r in seen if r.topic == settings.dead_letter_topic]
    assert dead == [], dead
    decisions = collections.Counter(
        orjson.loads(r.value)["post_id"] for r in seen if r.topic == settings.decisions_topic
    )
    assert decisions == dict.fromkeys(ids, 1), log[-3000:]
