"""The acceptance run: a real worker process on a real broker and a real Redis."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import orjson
import pytest
from posts import encode, malformed, post, unique_texts
from worker_metrics import metric, scrape

from modfleet.contracts.admin import create_topics
from modfleet.contracts.schemas import violations
from modfleet.inference import Verdict
from modfleet.ingest import Record
from modfleet.policy import Policy
from modfleet.replay import Outcomes, collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process
from modfleet.stream.app import StreamWorker

pytestmark = pytest.mark.integration

UNIQUE, DUPLICATES, BAD = 1550, 400, 50


def assert_schema_valid(outcomes: Outcomes) -> None:
    for kind, messages in (
        ("decision", outcomes.decisions),
        ("escalation", outcomes.escalations),
        ("dead_letter", outcomes.dead_letters),
    ):
        for message in messages:
            assert violations(kind, message) == [], (kind, message)


async def test_2000_posts_every_one_decided_or_dead_lettered(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(batch_max=128)
    await create_topics(settings, replication_factor=1, partitions=3)
    texts = unique_texts(UNIQUE)
    originals = [post(f"p-{i}", t) for i, t in enumerate(texts)]
    bad = malformed(BAD)
    # Repeats of earlier texts under new post ids, sent once the originals are decided, so
    # that each of them must come from Redis.
    repeats = [post(f"dup-{i}", texts[i * 3]) for i in range(DUPLICATES)]

    with worker_process(settings, tmp_path / "worker.log"):
        first = [encode(p) for p in originals] + [raw for _, raw in bad]
        await produce_posts(settings, first)
        phase1 = await collect_outcomes(settings, len(first), timeout_s=120)
        assert phase1.settled == len(first)
        await produce_posts(settings, [encode(p) for p in repeats])
        outcomes = await collect_outcomes(settings, len(first) + DUPLICATES, timeout_s=120)
        page = scrape(settings)
        cache_hits = metric(page, "modfleet_cache_hits_total")
        consumed = metric(page, "modfleet_posts_consumed_total")
        dead = metric(page, 'modfleet_dead_letters_total{reason="schema_invalid"}')
        allowed = metric(page, 'modfleet_decisions_total{action="allow"}')

    decided = {d["post_id"] for d in outcomes.decisions}
    valid_ids = {p["post_id"] for p in originals + repeats}
    assert decided == valid_ids, "every valid post has a decision, and nothing else does"
    assert len(outcomes.decisions) == len(valid_ids), "one decision per post"

    assert len(outcomes.dead_letters) == BAD
    sent_bad = {raw: field for field, raw in bad}
    for letter in outcomes.dead_letters:
        original = base64.b64decode(letter["original_b64"])
        assert letter["reason"]["code"] == "schema_invalid"
        assert letter["reason"]["field"] == sent_bad[original], letter["reason"]

    by_id = {d["post_id"]: d for d in outcomes.decisions}
    assert all(by_id[p["post_id"]]["from_cache"] for p in repeats)
    assert cache_hits >= DUPLICATES
    assert consumed == UNIQUE + BAD + DUPLICATES
    assert dead == BAD
    assert allowed == sum(1 for d in outcomes.decisions if d["action"] == "allow")
    # A repeat gets the verdict its original got.
    for i, p in enumerate(repeats):
        assert by_id[p["post_id"]]["scores"] == by_id[f"p-{i * 3}"]["scores"]

    escalated = {e["post_id"] for e in outcomes.escalations}
    assert escalated == {d["post_id"] for d in outcomes.decisions if d["action"] == "escalate"}
    assert {d["action"] for d in outcomes.decisions} >= {"allow"}
    assert_schema_valid(outcomes)


async def test_a_handled_batch_is_in_the_cache_before_it_is_acked(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cache write runs under the delivery rather than before it; a slow one must still be
    # done when handle_batch returns (and the agent acks), or an acked post is not a hit.
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    worker = StreamWorker(settings)
    write_to_redis = worker.cache.put_many

    async def slow(verdicts: Mapping[str, Verdict], packs: Mapping[str, Policy]) -> None:
        await asyncio.sleep(0.5)
        await write_to_redis(verdicts, packs)

    monkeypatch.setattr(worker.cache, "put_many", slow)
    text = "slow writes about orchards"
    first = Record(settings.posts_topic, 0, 0, time.time(), b"c-1", encode(post("c-1", text)))
    await worker.app.producer.start()
    try:
        await worker.handle_batch([first])
    finally:
        await worker.app.producer.stop()
    second = Record(settings.posts_topic, 0, 1, time.time(), b"c-2", encode(post("c-2", text)))
    [again] = await worker.pipeline.process([second])
    assert orjson.loads(again.value)["from_cache"] is True
    await worker.cache.close()
