"""Kafka clients for replaying posts and reading back decisions, escalations and dead-letters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from modfleet.kafka import client_options, consumer
from modfleet.settings import Settings


def post_key(value: bytes) -> bytes | None:
    """Key a raw post by its post id, as platforms are asked to; None when it has none."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    post_id = data.get("post_id") if isinstance(data, dict) else None
    return post_id.encode("utf-8", "surrogatepass") if isinstance(post_id, str) else None


async def produce_posts(
    settings: Settings,
    values: Iterable[bytes],
    headers: list[tuple[str, bytes]] | None = None,
) -> int:
    """Send each raw value to the posts topic keyed by its post id; returns how many were sent."""
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(settings.posts_topic, v, key=post_key(v), headers=headers)
            for v in values
        ]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


@dataclass
class Outcomes:
    """What came back, by topic, in arrival order, with when each arrived."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, list[list[tuple[str, bytes]]]] = field(default_factory=dict)
    first_at: float | None = None
    last_at: float | None = None
    # A post is known by its tenant and post id: ids are unique only within a tenant.
    _settled_keys: set[tuple[Any, Any]] = field(default_factory=set)
    # Posts decided "escalate" whose escalation (or the dead-letter standing in for it) has not
    # been read yet: it is on another topic, so it can arrive after the decision.
    _awaiting: set[tuple[Any, Any]] = field(default_factory=set)
    _escalated: set[tuple[Any, Any]] = field(default_factory=set)

    @property
    def settled(self) -> int:
        """Distinct posts with all their outcomes: a decision (with its escalation, when it
        escalates) or a dead-letter. A post decided twice after a redelivery counts once."""
        return len(self._settled_keys) - len(self._awaiting)


async def collect_outcomes(
    settings: Settings, expected: int, timeout_s: float, group: str | None = None
) -> Outcomes:
    """Read the output topics from the start until ``expected`` posts are settled or time is up."""
    topics = {
        settings.decisions_topic: "decisions",
        settings.escalations_topic: "escalations",
        settings.dead_letter_topic: "dead_letters",
    }
    reader = consumer(
        settings,
        *topics,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=group is not None,
    )
    outcomes = Outcomes()
    deadline = time.monotonic() + timeout_s
    try:
        await reader.start()  # within the try: a start that fails still closes the client
        while outcomes.settled < expected and time.monotonic() < deadline:
            batches = await reader.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    _add(outcomes, topics[tp.topic], record)
    finally:
        await reader.stop()
    return outcomes


def _add(outcomes: Outcomes, kind: str, record: Any) -> None:
    try:
        message = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return  # not a worker's: some other producer's record, or one not read
    if not isinstance(message, dict):
        return
    now = time.monotonic()
    outcomes.first_at = outcomes.first_at or now
    outcomes.last_at = now
    getattr(outcomes, kind).append(message)
    post = (message.get("tenant"), message.get("post_id"))
    if kind == "decisions":
        outcomes._settled_keys.add(post)
        if message.get("action") == "escalate" and post not in outcomes._escalated:
            outcomes._awaiting.add(post)
    else:
        outcomes._escalated.add(post)
        outcomes._awaiting.discard(post)
    if kind == "dead_letters":
        source = message.get("source")
        source = source if isinstance(source, dict) else {}
        where = f"{source.get('topic')}/{source.get('partition')}/{source.get('offset')}"
        outcomes._settled_keys.add(post if post[1] else (None, where))
    outcomes.headers.setdefault(kind, []).append(list(record.headers or ()))
