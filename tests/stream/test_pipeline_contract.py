"""What a backend hands the pipeline, and what the broker refuses, never make an output that
breaks its schema: scores are clamped or read as unreadable, odd stage and model names are not
passed on, and a refused output's stand-in names the record it stands for. No services: the
cache is off, the classifier a fixed one."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence

import orjson
import pytest
from posts import encode, post

from modfleet.cache import VerdictCache
from modfleet.contracts.schemas import violations
from modfleet.emit import Budget, Outbound, Topics
from modfleet.emit.budget import record_overhead
from modfleet.emit.messages import iso_time
from modfleet.inference import Classifier, Verdict
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import Policy, load_policy
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry

POLICY = load_policy(Settings().policy_path)
CATEGORIES = list(POLICY.categories)
SCHEMA_OF = {"decision": "decision", "escalation": "escalation", "dead_letter": "dead_letter"}
STAMP = 1_700_000_000.0


class Fixed(Classifier):
    model_id = "fixed-llm"
    cross_post_cache = False

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        return [self.verdict for _ in texts]


def pipeline(verdict: Verdict, budget: Budget | None = None) -> Pipeline:
    metrics = Metrics()
    extra = {} if budget is None else {"budget": budget}
    return Pipeline(
        POLICY,
        Fixed(verdict),
        VerdictCache(None, 60, metrics),
        metrics,
        Topics("decisions", "escalations", "dead-letter", "shadow"),
        Retry(1, 0.0),
        **extra,  # type: ignore[arg-type]
    )


def run(pipe: Pipeline, post_id: str = "p-1", key: bytes | None = b"p-1") -> list[Outbound]:
    record = Record("posts", 0, 7, STAMP, key, encode(post(post_id, "some post")))
    return asyncio.run(pipe.process([record]))


def bodies(out: list[Outbound]) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for message in out:
        body = orjson.loads(message.value)
        assert violations(SCHEMA_OF[message.kind], body) == [], (message.kind, body)  # type: ignore[arg-type]
        found[message.kind] = body
    return found


def categories(**scores: float) -> Verdict:
    return Verdict(scores={}, categories=dict.fromkeys(CATEGORIES, 0.0) | scores)


@pytest.mark.parametrize(
    ("verdict", "scores", "action"),
    [
        (categories(violence=1.7), {"violence": 1.0}, "remove"),
        (Verdict(scores={}, categories=dict.fromkeys(CATEGORIES, -0.2)), {"spam": 0.0}, "allow"),
        (categories(spam=1e-9), {"spam": 0.0}, "allow"),
    ],
)
def test_a_category_score_the_model_gives_directly_is_clamped_into_0_to_1(
    verdict: Verdict, scores: dict[str, float], action: str
) -> None:
    decision = bodies(run(pipeline(verdict)))["decision"]
    assert decision["action"] == action
    assert isinstance(decision["scores"], dict)
    assert decision["scores"].items() >= scores.items()
    assert all(0.0 <= score <= 1.0 for score in decision["scores"].values())


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_category_score_is_an_unreadable_verdict_for_review(bad: float) -> None:
    out = bodies(run(pipeline(categories(spam=bad))))
    assert out.keys() == {"decision", "escalation"}
    assert out["decision"]["action"] == "escalate"
    assert out["escalation"]["reason"] == "unparseable_verdict"
    assert "spam" in str(out["escalation"]["rationale"])


def test_a_category_the_pack_does_not_have_is_an_unreadable_verdict_for_review() -> None:
    # A policy-as-prompt model answers in category names of its own choosing; before, a name
    # the pack lacks failed the decision and dead-lettered the post as modfleet's error, which
    # no one reviews: a post that steered the model so went unmoderated.
    out = bodies(run(pipeline(Verdict(scores={}, categories={"": 0.9, "spam": 0.1}))))
    assert out.keys() == {"decision", "escalation"}
    assert out["escalation"]["reason"] == "unparseable_verdict"
    assert "''" in str(out["escalation"]["rationale"])


def test_a_rationale_that_is_not_unicode_text_is_decided_with_the_bad_part_replaced() -> None:
    # A lone surrogate (a JSON escape "\ud800" a server passed on) cannot be written as UTF-8:
    # the decision failed and the post was dead-lettered as modfleet's error.
    verdict = Verdict(scores={"modfleet:spam": 0.1}, rationale="fine \ud800 then")
    out = bodies(run(pipeline(verdict)))
    assert out.keys() == {"decision"}
    assert out["decision"]["rationale"] == "fine \ufffd then"


@pytest.mark.parametrize(
    ("verdict", "field"),
    [
        (Verdict(scores={"modfleet:spam": 0.1}, stage="gpu"), "stage"),
        (Verdict(scores={"modfleet:spam": 0.1}, stage=""), "stage"),
        (Verdict(scores={"modfleet:spam": 0.1}, model_id="m", fallback_from=""), "fallback_from"),
        (
            Verdict(scores={"modfleet:spam": 0.1}, model_id="m", fallback_from="f" * 300),
            "fallback_from",
        ),
        (Verdict(scores={"modfleet:spam": 0.1}, model_id="m\nx", fallback_from="f"), "model_id"),
        (Verdict(scores={"modfleet:spam": 0.99}, model_id="m" * 300), "model_id"),
    ],
)
def test_a_stage_or_model_name_the_schema_refuses_is_not_passed_on(
    verdict: Verdict, field: str
) -> None:
    # A backend (a plugin, say) that reports what decision.v1 cannot carry: the verdict is not
    # trusted (a person reviews the post), and the value is not written.
    out = bodies(run(pipeline(verdict)))
    assert out.keys() == {"decision", "escalation"}
    assert out["decision"]["action"] == "escalate"
    assert out["escalation"]["reason"] == "unparseable_verdict"
    assert field in str(out["escalation"]["rationale"])
    assert out["decision"]["model_id"] == "fixed-llm"


def test_a_cascade_stage_and_a_fallback_are_passed_on() -> None:
    verdict = Verdict(scores={"modfleet:spam": 0.1}, stage="llm", model_id="fb", fallback_from="m")
    decision = bodies(run(pipeline(verdict)))["decision"]
    assert (decision["stage"], decision["model_id"], decision["fallback_from"]) == (
        "llm",
        "fb",
        "m",
    )
    assert decision["action"] == "allow"


def weight(message: Outbound) -> int:
    return len(message.value) + record_overhead(message.key, message.headers)


@pytest.mark.parametrize("key", [b"u_58213", None, b"k" * 5000])
def test_a_refused_outputs_stand_in_is_keyed_and_sourced_as_any_dead_letter(
    key: bytes | None,
) -> None:
    # A valid post keyed by its author: its decision is keyed by post_id. When the broker
    # refuses that decision for good, the stand-in dead letter goes where the post's other
    # dead letters would (keyed by post_id), and says what key and timestamp the record had.
    pipe = pipeline(Verdict(scores={"modfleet:spam": 0.1}))
    [decision] = run(pipe, "p3", key)
    stand_in = pipe.undeliverable(decision)
    assert stand_in is not None
    assert stand_in.key == decision.key == b"p3"
    body = bodies([stand_in])["dead_letter"]
    assert body["reason"] == {
        "code": "undeliverable",
        "field": None,
        "message": "minimal dead-letter: read the post from its source record",
    }
    source = body["source"]
    assert isinstance(source, dict)
    assert source["timestamp"] == iso_time(STAMP)
    if key is None:
        assert source["key_b64"] is None
    else:
        kept = base64.b64decode(source["key_b64"])
        assert key.startswith(kept)
        assert len(kept) == min(len(key), 1024)
        assert source.get("key_truncated", False) is (len(key) > 1024)
    assert weight(stand_in) <= pipe.budget.record_bytes


def test_a_stand_in_fits_the_smallest_budget_whatever_the_post_and_key() -> None:
    # The widest post id JSON can write (256 control characters, 6 bytes each), the widest
    # tenant and a key past the limit: still within the least record size the settings allow.
    smallest = Budget(record_bytes=64 * 1024, escalation_text_bytes=1024)
    pipe = pipeline(Verdict(scores={"modfleet:spam": 0.1}), smallest)
    post_id = "\x01" * 256
    record = Record("p" * 249, 0, 7, STAMP, b"k" * 100_000, encode(post(post_id, "x", "t" * 128)))
    [decision] = asyncio.run(pipe.process([record]))
    stand_in = pipe.undeliverable(decision)
    assert stand_in is not None
    body = bodies([stand_in])["dead_letter"]
    assert body["post_id"] == post_id
    assert weight(stand_in) <= smallest.record_bytes


def test_a_post_with_a_lone_surrogate_escape_is_decided_and_its_escalation_written() -> None:
    value = b'{"schema_version": 1, "post_id": "s-1", "tenant": "acme", "text": "hi \\ud83d"}'
    pipe = pipeline(Verdict.unreadable("?", "steered"))
    out = bodies(asyncio.run(pipe.process([Record("posts", 0, 7, STAMP, b"s-1", value)])))
    assert out.keys() == {"decision", "escalation"}
    assert out["escalation"]["text"] == "hi \ufffd"
