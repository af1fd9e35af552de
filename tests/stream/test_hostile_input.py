"""Malformed and hostile posts: each is decided or dead-lettered with a reason, and nothing
crashes, on the pipeline (10,000 generated records) and on a real worker."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import pytest
from hostile import INJECTIONS, hostile_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from posts import FILLER, INSULT, encode, post

from modfleet.cache import connect_cache
from modfleet.contracts.admin import create_topics
from modfleet.contracts.schemas import violations
from modfleet.emit import Outbound, Topics
from modfleet.inference.base import Verdict
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import Policy, load_policy
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.reviews.agreement import Tally
from modfleet.reviews.join import Join
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process
from modfleet.stream import Pipeline, Retry

pytestmark = pytest.mark.integration

DEAD_LETTER_CODES = {"not_utf8", "not_json", "schema_invalid", "too_large", "inference_failed"}


@pytest.fixture(scope="module")
def make_pipeline(redis_url: str) -> Callable[[], Pipeline]:
    """The real model and Redis; one pipeline per event loop, as Redis clients bind to one."""
    settings = Settings(redis_url=redis_url)
    policy, classifier = load_policy(settings.policy_path), EmbeddedClassifier()

    def make() -> Pipeline:
        metrics = Metrics()
        cache = connect_cache(settings, metrics)
        return Pipeline(
            policy, classifier, cache, metrics, Topics.from_settings(settings), Retry(2, 0.01)
        )

    return make


@pytest.fixture
def pipeline(make_pipeline: Callable[[], Pipeline]) -> Pipeline:
    return make_pipeline()


def check_one_outcome_each(
    records: list[Record], out: list[Outbound], offsets: dict[str, int]
) -> None:
    outcomes: collections.Counter[int] = collections.Counter()
    for message in out:
        kind = message.kind
        body = orjson.loads(message.value)
        assert violations(kind, body) == [], (kind, body)
        if kind == "dead_letter":
            assert body["reason"]["code"] in DEAD_LETTER_CODES
            assert body["reason"]["message"]
            outcomes[body["source"]["offset"]] += 1
        elif kind == "decision":
            outcomes[offsets[body["post_id"]]] += 1
    assert sorted(outcomes) == [r.offset for r in records]
    assert set(outcomes.values()) == {1}


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(values=st.lists(hostile_records(), min_size=10, max_size=10))  # 10,000 records
def test_every_hostile_record_gets_one_outcome(
    make_pipeline: Callable[[], Pipeline], values: list[bytes]
) -> None:
    # Unique ids, so that each decision can be traced back to its record.
    records, offsets = [], {}
    for offset, value in enumerate(values):
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("post_id"), str):
            body["post_id"] = f"{body['post_id']}#{offset}"
            offsets[body["post_id"]] = offset
            value = orjson.dumps(body)
        records.append(Record("posts", 0, offset, 1.7e9, None, value))
    out = asyncio.run(_process_once(make_pipeline(), records))
    check_one_outcome_each(records, out, offsets)


async def _process_once(pipeline: Pipeline, records: list[Record]) -> list[Outbound]:
    try:
        return await pipeline.process(records)
    finally:
        await pipeline.cache.close()


async def test_a_3_mb_post_is_cut_to_the_policy_limit_and_says_so(pipeline: Pipeline) -> None:
    body = encode(post("big-1", "you idiot " * 300_000))
    assert len(body) > 3_000_000
    [decision, *_] = await pipeline.process([Record("posts", 0, 0, 1.7e9, None, body)])
    message = orjson.loads(decision.value)
    assert message["truncated"] is True
    assert message["action"] != "allow"


async def test_a_10_mb_post_is_dead_lettered_too_large_without_being_read(
    pipeline: Pipeline,
) -> None:
    body = encode(post("big-2", "you idiot " * 1_000_000))
    [letter] = await pipeline.process([Record("posts", 0, 7, 1.7e9, None, body)])
    message = orjson.loads(letter.value)
    assert message["reason"]["code"] == "too_large"
    assert message["post_id"] is None  # not parsed, so not known
    assert message["source"]["value_bytes"] == len(body)
    assert message["original_truncated"] is True  # the first part, to fit the broker
    assert len(letter.value) < 1024 * 1024


async def test_two_tenants_posts_of_one_id_are_two_decisions_with_two_ids(
    pipeline: Pipeline,
) -> None:
    # A post_id is unique only within its tenant, and any tenant may send another's ids: one
    # shared decision_id would let a consumer dedupe one tenant's decision away as the other's,
    # and the review join count one tenant's review against the other's decision.
    values = [
        encode(post("1", "you are a worthless idiot", tenant="acme")),
        encode(post("1", "what a lovely day at the beach", tenant="globex")),
    ]
    out = await pipeline.process(
        [Record("posts", i, 0, 1.7e9, b"1", v) for i, v in enumerate(values)]
    )
    decided = {d["tenant"]: d for d in (orjson.loads(m.value) for m in out if m.kind == "decision")}
    acme, globex = decided["acme"], decided["globex"]
    assert (acme["action"], globex["action"]) != ("allow", "allow")
    assert globex["action"] == "allow"
    assert acme["decision_id"] != globex["decision_id"]
    join, tally = Join(max_decisions=10, ttl_s=3600), Tally()
    for now, d in enumerate((acme, globex)):
        tally.add(join.add_decision(d, float(now)))
    review = {"decision_id": globex["decision_id"], "post_id": "1", "tenant": "globex"}
    tally.add(join.add_review({**review, "action": "allow", "verdicts": {}}, 2.0))
    assert tally.results["joined"] == 1
    assert tally.results["mismatch"] == 0


async def test_an_edited_post_is_a_new_decision_not_a_duplicate_of_its_first_version(
    pipeline: Pipeline,
) -> None:
    # Post something harmless, then edit it into abuse: with one decision_id for both, a
    # consumer deduping on it (as topics/README.md says to) would keep the first "allow".
    versions = ["what a lovely day at the beach", "you are a worthless idiot"]
    values = [encode(post("42", text)) for text in versions]
    values.append(values[0])  # the first version redelivered
    out = await pipeline.process(
        [Record("posts", 0, i, 1.7e9, b"42", v) for i, v in enumerate(values)]
    )
    first, edited, again = [orjson.loads(m.value) for m in out if m.kind == "decision"]
    assert (first["action"], edited["action"]) == ("allow", "remove")
    assert edited["decision_id"] != first["decision_id"]
    assert again["decision_id"] == first["decision_id"], "a redelivery dedupes as before"


async def test_padding_the_model_never_sees_cannot_get_a_post_allowed(pipeline: Pipeline) -> None:
    # 90,000 zero-width spaces (270 KB, far under the size limit) fold away to nothing; they
    # once counted towards the cut that bounds a long body, and the words after them were lost.
    words = "you are a worthless idiot and everyone hates you"
    values = [encode(post("pad-0", words)), encode(post("pad-1", "\u200b" * 90_000 + words))]
    out = await pipeline.process(
        [Record("posts", 0, i, 1.7e9, None, v) for i, v in enumerate(values)]
    )
    plain, padded = (orjson.loads(m.value) for m in out if m.kind == "decision")
    assert plain["action"] != "allow"
    assert (padded["action"], padded["scores"]) == (plain["action"], plain["scores"])
    assert padded["truncated"] is False


async def test_a_property_name_cannot_forge_a_log_line(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    # With MODFLEET_LOG_FORMAT=text a newline in the rejected field's pointer would start a
    # line of the poster's choosing in the worker's log.
    forged = "x\n2026-01-01 00:00:00,000 CRITICAL modfleet.stream.deliver: exiting"
    value = orjson.dumps({**post("p-forged", "hi"), forged: "1"})
    with caplog.at_level("INFO", logger="modfleet.stream.pipeline"):
        out = await _process_once(pipeline, [Record("posts", 0, 0, None, None, value)])
    assert [m.kind for m in out] == ["dead_letter"]
    lines = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert lines
    assert not any("\n" in line or "\r" in line for line in lines)


async def test_prompt_injection_text_is_just_text(pipeline: Pipeline) -> None:
    values = [encode(post(f"inj-{i}", text)) for i, text in enumerate(INJECTIONS)]
    out = await pipeline.process(
        [Record("posts", 0, i, 1.7e9, None, v) for i, v in enumerate(values)]
    )
    assert sorted(m.kind for m in out if m.kind != "escalation") == ["decision"] * len(INJECTIONS)


async def test_hostile_stream_never_crashes_a_worker_and_memory_stays_bounded(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=2)
    values = _hostile_corpus(2_000)
    # Through the broker and a real worker: abuse in the middle of a long post is read.
    values.append(encode(post("mid-e2e", FILLER * 900 + INSULT + " " + FILLER * 900)))
    with worker_process(settings, tmp_path / "worker.log") as proc:
        await produce_posts(settings, values[:100])
        await collect_outcomes(settings, 100, timeout_s=60)
        before = _rss_kib(proc.pid)
        await produce_posts(settings, values[100:])
        outcomes = await collect_outcomes(settings, len(values), timeout_s=120)
        after = _rss_kib(proc.pid)
        assert proc.poll() is None
    assert outcomes.settled == len(values)
    assert after - before < 150 * 1024, f"RSS grew from {before} KiB to {after} KiB"
    [middle] = [d for d in outcomes.decisions if d["post_id"] == "mid-e2e"]
    assert (middle["action"], middle["truncated"]) == ("remove", False)


def _hostile_corpus(count: int) -> list[bytes]:
    """Fixed hostile shapes with unique post ids, ~900 KB bodies among them: reproducible."""
    shapes = [
        b"\xff\xfe\x00garbage",
        b"[" * 3000 + b"]" * 3000,
        b'{"schema_version": 1, "post_id": "ID", "tenant": "acme", "text": "\xc3\x28"}',
        b'{"schema_version": 1, "post_id": "ID", "tenant": "acme", "text": {"nested": [1, 2]}}',
        b'{"schema_version": "1", "post_id": "ID", "tenant": "acme", "text": "x"}',
        b'{"schema_version": 1, "post_id": "ID", "tenant": "\\u0000", "text": "x"}',
    ]
    out = []
    for i in range(count):
        if i % 50 == 0:
            out.append(encode(post(f"big-{i}", "spam " * 180_000)))
        elif i % 3 == 0:
            out.append(encode(post(f"inj-{i}", INJECTIONS[i % len(INJECTIONS)] + "\x00\u202e")))
        else:
            out.append(shapes[i % len(shapes)].replace(b"ID", f"h-{i}".encode()))
    return out


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_abuse_in_the_middle_of_a_long_post_is_read_and_decided(pipeline: Pipeline) -> None:
    # 64,800 characters of a beach day either side of the insult: read as one window of the
    # pack's 20,000, its beginning and its end, the post was allowed.
    values = [
        encode(post("mid-0", FILLER * 900 + INSULT + " " + FILLER * 900)),
        encode(post("mid-1", FILLER * 1_800)),
    ]
    out = await _process_once(
        pipeline, [Record("posts", 0, i, 1.7e9, None, v) for i, v in enumerate(values)]
    )
    abusive, harmless = (orjson.loads(m.value) for m in out if m.kind == "decision")
    assert abusive["action"] == "remove"
    assert abusive["truncated"] is False
    assert harmless["action"] == "allow"
    assert harmless["truncated"] is False


class _Recording(EmbeddedClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        self.asked += texts
        return await super().classify(texts, policy)


async def test_a_huge_post_costs_the_model_the_packs_windows_at_most(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url)
    policy, classifier = load_policy(settings.policy_path), _Recording()
    metrics = Metrics()
    cache = connect_cache(settings, metrics)
    topics = Topics.from_settings(settings)
    pipeline = Pipeline(policy, classifier, cache, metrics, topics, Retry(2, 0.01))
    limits = policy.limits
    body = encode(post("huge-windows", (FILLER * 55_000)[:3_900_000] + INSULT))
    [decision] = await _process_once(pipeline, [Record("posts", 0, 0, 1.7e9, None, body)])
    assert orjson.loads(decision.value)["truncated"] is True
    assert 1 < len(classifier.asked) <= limits.max_windows
    assert all(len(text) <= limits.max_text_chars for text in classifier.asked)
    assert classifier.asked[-1].endswith(INSULT)
    # SREs see what long posts cost the model: the windows past each text's first.
    assert metrics.text_windows._value.get() == len(classifier.asked) - 1
