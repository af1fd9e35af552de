"""What the pipeline does with LLM-tier verdicts: unparseable ones are escalated (never allowed,
never cached), category-space scores are decided on, and the cascade stage reaches the decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from posts import encode, post

from modfleet.cache import Sealer, cache_key
from modfleet.contracts.schemas import violations
from modfleet.emit import Topics
from modfleet.inference import Classifier, Verdict
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import Policy
from modfleet.stream import Pipeline, Retry


class Fixed(Classifier):
    model_id = "fixed-llm"

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        return [self.verdict for _ in texts]


class RecordingCache:
    """The VerdictCache interface, without Redis: every lookup misses, writes are recorded."""

    def __init__(self) -> None:
        self.written: dict[str, Verdict] = {}

    async def get_many(self, keys: Sequence[str], packs: Sequence[Policy]) -> list[Verdict | None]:
        return [None] * len(keys)

    async def put_many(self, verdicts: Mapping[str, Verdict], packs: Mapping[str, Policy]) -> None:
        self.written.update(verdicts)


Outputs = dict[str, list[dict[str, Any]]]


async def run(policy: Policy, verdict: Verdict) -> tuple[Outputs, RecordingCache]:
    cache = RecordingCache()
    topics = Topics("d", "e", "dl")
    # The cache is duck-typed: VerdictCache without Redis.
    pipe = Pipeline(policy, Fixed(verdict), cache, Metrics(), topics, Retry(1, 0.0))
    records = [Record("posts", 0, 0, 1_700_000_000.0, None, encode(post("p-1", "some post")))]
    out: Outputs = {"decision": [], "escalation": [], "dead_letter": []}
    for message in await pipe.process(records):
        body = orjson.loads(message.value)
        assert violations(message.kind, body) == [], (message.kind, body)
        out[message.kind].append(body)
    return out, cache


async def test_an_unparseable_verdict_is_escalated_with_its_raw_output(
    small_policy: Policy,
) -> None:
    raw = 'Sure! Here is my answer: {"violation": 0'
    out, cache = await run(small_policy, Verdict.unreadable(raw, "final answer is not JSON"))
    [decision] = out["decision"]
    [escalation] = out["escalation"]
    assert decision["action"] == "escalate"
    assert decision["labels"] == []
    assert escalation["reason"] == "unparseable_verdict"
    assert escalation["raw_output"] == raw
    assert escalation["rationale"] == "final answer is not JSON"
    assert cache.written == {}  # asked again next time, never served from the cache


async def test_llm_category_scores_decide_categories_no_label_maps(small_policy: Policy) -> None:
    # violence has model_labels: [] - only a model that read the policy can score it.
    verdict = Verdict(scores={}, categories={"harassment": 0.1, "violence": 0.95}, stage="llm")
    out, cache = await run(small_policy, verdict)
    [decision] = out["decision"]
    assert decision["action"] == "remove"
    assert decision["labels"] == ["violence"]
    assert decision["stage"] == "llm"
    assert next(iter(cache.written.values())).categories == verdict.categories


async def test_a_cached_cascade_verdict_keeps_its_stage_and_categories(
    small_policy: Policy,
) -> None:
    # Through the cache entry itself: what a later hit decides on is what the cascade said.
    verdict = Verdict(scores={"offensive": 0.9}, categories={"violence": 0.2}, stage="embedded")
    sealer = Sealer(b"0123456789abcdef-secret")
    key = cache_key(small_policy, "scope", "ab" * 32, "acme")
    opened = sealer.open(key, sealer.seal(key, verdict, small_policy), small_policy).verdict
    assert opened is not None
    assert opened.stage == "embedded"
    assert opened.policy_scores(small_policy) == verdict.policy_scores(small_policy)
    assert opened.policy_scores(small_policy) == {"violence": 0.2}


async def test_decisions_without_a_stage_carry_none(small_policy: Policy) -> None:
    out, _ = await run(small_policy, Verdict(scores={"offensive": 0.0}))
    assert "stage" not in out["decision"][0]
