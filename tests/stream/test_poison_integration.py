"""Poison records on a real broker with two workers: no record takes the fleet down.

Each poison class (the issue's list: a valid post too big to escalate whole, a 1 MB key, JSON
nested ~1,000 deep, a timestamp past year 9999 and one before 1970, 90k attributes, duplicate
keys, a 1 MB header, 10,000 headers, a gzip value that inflates past the post limit) sits among
valid posts. At the end both workers are still running, every valid post is decided exactly
once, each poison record has exactly one outcome, and no output record is over the budget.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from posts import encode, post, unique_texts

from modfleet.contracts.admin import create_topics
from modfleet.emit import Budget
from modfleet.emit.budget import record_overhead
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.kafka import client_options
from modfleet.policy import load_policy
from modfleet.settings import Settings
from modfleet.stack import free_port
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

VALID_PER_POISON = 200
YEAR_10000_MS = 253_402_300_800_000 + 86_400_000


@dataclass
class Poison:
    name: str
    value: bytes
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int | None = None
    gzip: bool = False
    post_id: str | None = None  # set when the record is a readable post


async def escalating_text() -> str:
    """A text the shipped pack escalates, found by asking the shipped model (no hard-coding)."""
    policy = load_policy(Settings().policy_path)
    candidates = [
        "you are such an idiot",
        "shut up you moron",
        "what a stupid take, idiot",
        "this is damn annoying",
        "you people are disgusting",
        "go to hell",
        "screw you",
        "what the hell is wrong with you",
    ]
    verdicts = await EmbeddedClassifier().classify(candidates, policy)
    for text, verdict in zip(candidates, verdicts, strict=True):
        if policy.decide(verdict.policy_scores(policy)).action == "escalate":
            return text
    raise AssertionError("no candidate text is escalated by the shipped pack: add one")


def poisons(escalating: str, max_post_bytes: int) -> list[Poison]:
    big = (escalating + " ") * (2_600_000 // (len(escalating) + 1))
    deep = b"[" * 1000 + b"]" * 1000
    attrs = {f"k{i}": "v" for i in range(90_000)}
    valid = {"schema_version": 1, "tenant": "acme", "text": "hello there"}
    return [
        Poison("huge-escalation", encode(post("p-huge", big)), b"p-huge", post_id="p-huge"),
        Poison("megabyte-key", b"\xff\xfe not json", key=b"K" * 1_000_000),
        Poison(
            "deep-json",
            orjson.dumps({**valid, "post_id": "p-deep"})[:-1] + b', "attributes": ' + deep + b"}",
        ),
        Poison(
            "year-10000",
            encode(post("p-future", "nice day")),
            timestamp_ms=YEAR_10000_MS,
            post_id="p-future",
        ),
        Poison(
            "before-1970", encode(post("p-past", "nice day")), timestamp_ms=-5_000, post_id="p-past"
        ),
        Poison(
            "90k-attributes", orjson.dumps({**valid, "post_id": "p-attrs", "attributes": attrs})
        ),
        Poison(
            "duplicate-keys",
            b'{"schema_version": 1, "post_id": "p-dup", "tenant": "acme", '
            b'"text": "nice day", "text": "you idiot"}',
        ),
        Poison(
            "megabyte-header",
            encode(post("p-hdr", "hello")),
            headers=[("tracestate", b"x" * 1_000_000)],
            post_id="p-hdr",
        ),
        Poison(
            "10k-headers",
            encode(post("p-hdrs", "hello")),
            headers=[(f"h{i}", b"v") for i in range(10_000)],
            post_id="p-hdrs",
        ),
        Poison(
            "gzip-bomb",
            encode(post("p-gzip", "a" * (max_post_bytes + 1_000_000))),
            gzip=True,
        ),
    ]


async def produce(settings: Settings, records: list[Poison]) -> list[tuple[int, int]]:
    """Send in order; returns each record's (partition, offset)."""
    where: list[tuple[int, int]] = []
    plain = AIOKafkaProducer(**client_options(settings), max_request_size=16 * 1024 * 1024)
    packed = AIOKafkaProducer(
        **client_options(settings), max_request_size=16 * 1024 * 1024, compression_type="gzip"
    )
    await plain.start()
    await packed.start()
    try:
        for r in records:
            producer = packed if r.gzip else plain
            sent = await producer.send_and_wait(
                settings.posts_topic,
                r.value,
                key=r.key,
                headers=r.headers or None,
                timestamp_ms=r.timestamp_ms,
            )
            where.append((sent.partition, sent.offset))
    finally:
        await plain.stop()
        await packed.stop()
    return where


async def read_outputs(
    settings: Settings, done: Callable[[list[Any]], bool], timeout_s: float
) -> list[Any]:
    topics = [
        settings.decisions_topic,
        settings.escalations_topic,
        settings.dead_letter_topic,
        settings.shadow_decisions_topic,
    ]
    consumer = AIOKafkaConsumer(
        *topics, **client_options(settings), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(seen):
            batches = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batches.values():
                seen.extend(records)
        # A moment more for any duplicate that would break "exactly once".
        for _ in range(5):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                seen.extend(records)
    finally:
        await consumer.stop()
    return seen


async def test_no_poison_record_takes_down_either_of_two_workers(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(batch_max=64)
    await create_topics(settings, replication_factor=1, partitions=2)
    budget = Budget.from_settings(settings)
    classes = poisons(await escalating_text(), settings.max_post_bytes)
    texts = unique_texts(VALID_PER_POISON * len(classes), seed=11)
    batch: list[Poison] = []
    valid_ids: set[str] = set()
    for i, poison in enumerate(classes):
        for j in range(VALID_PER_POISON):
            pid = f"v-{i}-{j}"
            valid_ids.add(pid)
            batch.append(
                Poison(
                    "valid",
                    encode(post(pid, texts[i * VALID_PER_POISON + j])),
                    pid.encode(),
                    post_id=pid,
                )
            )
            if j == VALID_PER_POISON // 2:
                batch.append(poison)

    logs = tmp_path
    first = settings.model_copy(update={"web_port": free_port()})
    second = settings.model_copy(update={"web_port": free_port()})
    with (
        worker_process(first, logs / "w1.log") as w1,
        worker_process(second, logs / "w2.log") as w2,
    ):
        await asyncio.sleep(2)  # both in the group before the first post
        where = await produce(settings, batch)
        coordinates = {w: r for w, r in zip(where, batch, strict=True)}

        def settled(seen: list[Any]) -> bool:
            return len(outcomes_per_record(seen, coordinates)) == len(batch)

        seen = await read_outputs(settings, settled, timeout_s=240)
        assert w1.poll() is None, (logs / "w1.log").read_text()[-3000:]
        assert w2.poll() is None, (logs / "w2.log").read_text()[-3000:]

    for record in seen:
        weight = len(record.value) + record_overhead(record.key, record.headers or ())
        assert weight <= budget.record_bytes, (record.topic, weight)
    counts = outcomes_per_record(seen, coordinates)
    missing = [r.name for w, r in coordinates.items() if counts.get(w, 0) == 0]
    assert missing == [], f"no outcome for {missing}"
    twice = [(r.name, r.post_id) for w, r in coordinates.items() if counts[w] != 1]
    assert twice == [], f"more than one outcome for {twice}"
    decided = [
        orjson.loads(r.value)["post_id"] for r in seen if r.topic == settings.decisions_topic
    ]
    assert valid_ids <= set(decided)


EXPECTED = {
    "huge-escalation": "decision+escalation",
    "megabyte-key": "dead_letter:not_utf8",
    "deep-json": "dead_letter:schema_invalid",
    "year-10000": "decision",
    "before-1970": "decision",
    "90k-attributes": "dead_letter:schema_invalid",
    "duplicate-keys": "dead_letter:schema_invalid",
    "megabyte-header": "decision",
    "10k-headers": "decision",
    "gzip-bomb": "dead_letter:too_large",
}


def outcome_kinds(
    seen: list[Any], coordinates: dict[tuple[int, int], Poison], settings: Settings
) -> dict[str, str]:
    by_id = {r.post_id: r.name for r in coordinates.values() if r.post_id and r.name != "valid"}
    kinds: dict[str, list[str]] = collections.defaultdict(list)
    for record in seen:
        body = orjson.loads(record.value)
        if record.topic == settings.decisions_topic and body["post_id"] in by_id:
            kinds[by_id[body["post_id"]]].append("decision")
        elif record.topic == settings.escalations_topic and body["post_id"] in by_id:
            assert body["text_truncated"] is True, "the 2.6 MB text is cut to the budget"
            kinds[by_id[body["post_id"]]].append("escalation")
        elif record.topic == settings.dead_letter_topic:
            poison = coordinates[(body["source"]["partition"], body["source"]["offset"])]
            kinds[poison.name].append("dead_letter:" + body["reason"]["code"])
    return {name: "+".join(sorted(found)) for name, found in kinds.items()}


def outcomes_per_record(
    seen: list[Any], coordinates: dict[tuple[int, int], Poison]
) -> dict[tuple[int, int], int]:
    """Outcomes by the post record they answer: decisions by post id, dead-letters by source."""
    by_id = {r.post_id: w for w, r in coordinates.items() if r.post_id}
    counts: collections.Counter[tuple[int, int]] = collections.Counter()
    for record in seen:
        body = orjson.loads(record.value)
        if "decided_at" in body and "shadow" not in record.topic:
            where = by_id.get(body["post_id"])
        elif "dead_lettered_at" in body:
            where = (body["source"]["partition"], body["source"]["offset"])
        else:
            continue
        if where is not None:
            counts[where] += 1
    return dict(counts)
