"""A decompression bomb between ordinary posts, through a real broker and a real worker.

The bomb is a zstd batch of 16 records of 16 MiB of zeros: about 10 kB on the wire, 256 MiB
inflated, four times the worker's default bound. It is sent with a plain ProduceRequest, as a
raw-protocol producer would. Before, the worker inflated it whole (its peak memory rose by
twice that) and dead-lettered the zeros it found; now each of its offsets is dead-lettered
as a batch not read, every post around it is decided once, and the worker's peak memory rises
by about the bound."""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from posts import encode, post, unique_texts
from raw_batches import produce_raw, zstd_bomb
from test_header_keys_integration import outputs

from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

BEFORE, BOMB, AFTER = 3, 16, 3  # posts, the bomb's records, posts: offsets 0-2, 3-18, 19-21
BOUND = 64 * 1024 * 1024  # the default of max_batch_inflated_bytes


def reset_peak(pid: int) -> int:
    """Start ``pid``'s peak memory (VmHWM) again from here; returns its resident memory."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory(pid, "VmRSS")


def memory(pid: int, field: str) -> int:
    found = re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert found is not None
    return int(found.group(1)) * 1024


async def send(settings: Settings, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for body in values:
            await producer.send_and_wait(settings.posts_topic, body, partition=0)
    finally:
        await producer.stop()


async def test_a_decompression_bomb_costs_its_own_offsets_and_not_the_worker(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    ids = [f"bomb-{i}" for i in range(BEFORE + AFTER)]
    values = [
        encode(post(pid, text)) for pid, text in zip(ids, unique_texts(len(ids)), strict=True)
    ]
    bomb = zstd_bomb(BOMB, 16 * 1024 * 1024)
    bomb_offsets = set(range(BEFORE, BEFORE + BOMB))

    def decided(posts: list[str]) -> Callable[[list[Any]], bool]:
        def done(seen: list[Any]) -> bool:
            out = {orjson.loads(r.value).get("post_id") for r in seen}
            return out >= set(posts)

        return done

    def settled(seen: list[Any]) -> bool:
        letters = {
            orjson.loads(r.value)["source"]["offset"]
            for r in seen
            if r.topic == settings.dead_letter_topic
        }
        return decided(ids)(seen) and letters >= bomb_offsets

    log_path = tmp_path / "worker.log"
    with worker_process(settings, log_path) as worker:
        await asyncio.sleep(2)  # in the group before the first post
        await send(settings, values[:BEFORE])
        await outputs(settings, decided(ids[:BEFORE]))
        # The worker is warm: from here its peak memory counts the bomb and what follows it.
        resident = reset_peak(worker.pid)
        await produce_raw(settings, settings.posts_topic, bomb)
        await send(settings, values[BEFORE:])
        seen = await outputs(settings, settled)
        growth = memory(worker.pid, "VmHWM") - resident
        log = log_path.read_text(errors="replace")
        assert worker.poll() is None, log[-3000:]

    decisions = collections.Counter(
        orjson.loads(r.value)["post_id"] for r in seen if r.topic == settings.decisions_topic
    )
    assert decisions == dict.fromkeys(ids, 1), log[-3000:]
    letters = [orjson.loads(r.value) for r in seen if r.topic == settings.dead_letter_topic]
    assert sorted(letter["source"]["offset"] for letter in letters) == sorted(bomb_offsets)
    for letter in letters:
        assert letter["reason"]["code"] == "too_large"
        assert letter["reason"]["message"] == (
            f"not read: its record batch (offsets {BEFORE}..{BEFORE + BOMB - 1}, zstd, "
            f"{len(bomb) - 61:,} bytes compressed) inflates past max_batch_inflated_bytes "
            f"({BOUND:,} bytes)"
        )
    # The bound, and what zstd keeps while inflating; before, twice the bomb's 256 MiB.
    assert growth < BOUND + 48 * 1024 * 1024, f"peak rose {growth:,} bytes"
