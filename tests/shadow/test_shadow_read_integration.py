"""`modfleet shadow report` reads the decisions topics of a real broker, whatever is on them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from raw_batches import batch, produce_raw, zstd_bomb
from review_messages import decision

from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.settings import Settings
from modfleet.shadow import compare, read_decisions

pytestmark = pytest.mark.integration


async def _send(settings: Settings, topic: str, values: list[bytes | None]) -> None:
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k", partition=0)
    finally:
        await producer.stop()


def _live_and_shadow(post_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A live decision to remove, and the candidate pack's shadow decision to allow."""
    live = decision(post_id, "remove", ("hate",))
    return live, {**live, "action": "allow", "labels": [], "policy_id": "candidate"}


def test_records_that_are_not_decisions_cost_only_themselves(
    make_settings: Callable[..., Settings],
) -> None:
    # Any producer with access can write to these topics; before, a tombstone or a line that
    # is not JSON ended the report with a traceback, and a bomb was inflated whole.
    settings = make_settings()
    live, shadow = _live_and_shadow("s-1")
    junk: list[bytes | None] = [None, b"not json", b"[1]", orjson.dumps({"post_id": 7})]

    async def scenario() -> tuple[list[Any], list[Any]]:
        await create_topics(settings, replication_factor=1, partitions=1)
        await _send(settings, settings.decisions_topic, [*junk, orjson.dumps(live)])
        await produce_raw(settings, settings.shadow_decisions_topic, zstd_bomb(4, 32 << 20))
        await _send(settings, settings.shadow_decisions_topic, [orjson.dumps(shadow)])
        return await read_decisions(settings, idle_s=2.0)

    lives, shadows = asyncio.run(scenario())
    assert [d["post_id"] for d in lives] == ["s-1"]
    assert [d["policy_id"] for d in shadows] == ["candidate"]
    [c] = compare(lives, shadows)
    assert (c.compared, c.agreed) == (1, 0)


def test_a_decision_whose_header_key_is_not_utf8_is_read(
    make_settings: Callable[..., Settings],
) -> None:
    # aiokafka's C reader raised on such a key inside its fetcher: the report ended there.
    settings = make_settings()
    live, shadow = _live_and_shadow("h-1")

    async def scenario() -> tuple[list[Any], list[Any]]:
        await create_topics(settings, replication_factor=1, partitions=1)
        hostile = batch(0, 1, {0}, values=[orjson.dumps(live)])
        await produce_raw(settings, settings.decisions_topic, hostile)
        await _send(settings, settings.shadow_decisions_topic, [orjson.dumps(shadow)])
        return await read_decisions(settings, idle_s=2.0)

    lives, shadows = asyncio.run(scenario())
    assert [d["post_id"] for d in lives] == ["h-1"]
    assert [d["policy_id"] for d in shadows] == ["candidate"]
