"""What a pack does while its model is down, on the pipeline with stand-in models (pure logic:
the outage on a real worker and broker is tests/stream/test_model_outage_integration.py)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest
from posts import encode, post

from modfleet.cache import connect_cache
from modfleet.emit import Topics
from modfleet.errors import FatalError, RecoverableError
from modfleet.inference import Classifier, Verdict
from modfleet.inference.routing import Backends
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import Policy, load_policy
from modfleet.policy.packs import PolicySet
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry
from modfleet.stream.deliver import count_delivered
from modfleet.stream.infer import PROBE_TEXT, BackendDown

BASE = load_policy(Settings().policy_path)
LABELS = sorted({label for c in BASE.categories.values() for label in c.model_labels})


class Scores(Classifier):
    """Scores every text 0.9 on every label the pack reads, unless told to fail."""

    def __init__(self, model_id: str, down: bool = False, poison: str | None = None) -> None:
        self.model_id = model_id
        self.down = down
        self.poison = poison

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if self.down:
            raise RecoverableError("connection refused")
        if self.poison is not None and self.poison in texts:
            raise RecoverableError("this text breaks the model")
        return [Verdict(scores=dict.fromkeys(LABELS, 0.9)) for _ in texts]


class DeadEngine(Classifier):
    model_id = "dead"

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        raise FatalError("engine dead")


def pack(on_model_down: str) -> Policy:
    model = BASE.model.model_copy(
        update={"backend": "openai", "on_model_down": on_model_down, "fallback": "embedded"}
    )
    return BASE.model_copy(update={"model": model})


def pipeline(
    classifier: Classifier, policy: Policy, fallback: Classifier | None = None
) -> Pipeline:
    settings = Settings(cache_enabled=False)
    metrics = Metrics()
    return Pipeline(
        policy,
        classifier,
        connect_cache(settings, metrics),
        metrics,
        Topics.from_settings(settings),
        Retry(2, 0.0),
        fallbacks=None if fallback is None else (lambda name: fallback),
    )


def records(*texts: str) -> list[Record]:
    return [
        Record("posts", 0, i, 1.7e9, None, encode(post(f"p-{i}", t))) for i, t in enumerate(texts)
    ]


async def test_wait_raises_backend_down_and_decides_nothing() -> None:
    with pytest.raises(BackendDown):
        await pipeline(Scores("m", down=True), pack("wait")).process(records("a", "b"))


async def test_escalate_sends_every_post_to_review_with_the_reason() -> None:
    out = await pipeline(Scores("m", down=True), pack("escalate")).process(records("a", "b"))
    escalations = [orjson.loads(m.value) for m in out if m.kind == "escalation"]
    assert [e["reason"] for e in escalations] == ["model_down", "model_down"]
    decisions = [orjson.loads(m.value) for m in out if m.kind == "decision"]
    assert {d["action"] for d in decisions} == {"escalate"}


async def test_fallback_decides_and_names_both_models() -> None:
    stand_in = Scores("fallback-model")
    out = await pipeline(Scores("m", down=True), pack("fallback"), stand_in).process(
        records("a", "b")
    )
    decisions = [orjson.loads(m.value) for m in out if m.kind == "decision"]
    assert len(decisions) == 2
    assert {(d["model_id"], d["fallback_from"]) for d in decisions} == {("fallback-model", "m")}


async def test_a_post_that_fails_alone_on_a_healthy_model_is_dead_lettered() -> None:
    assert PROBE_TEXT != "poison"
    out = await pipeline(Scores("m", poison="poison"), pack("wait")).process(
        records("fine", "poison", "also fine")
    )
    letters = [orjson.loads(m.value) for m in out if m.kind == "dead_letter"]
    assert [(d["post_id"], d["reason"]["code"]) for d in letters] == [("p-1", "inference_failed")]
    assert sum(1 for m in out if m.kind == "decision") == 2


async def test_a_dead_engine_is_fatal_not_retried_as_a_post_problem() -> None:
    with pytest.raises(FatalError):
        await pipeline(DeadEngine(), pack("wait")).process(records("a"))


async def test_metrics_count_a_batch_once_however_often_it_was_tried() -> None:
    pipe = pipeline(Scores("m"), pack("wait"))
    batch = [*records("a", "b"), Record("posts", 0, 9, None, None, b"not json")]
    for _ in range(3):  # as the agent's retries would
        out = await pipe.process(batch)
    assert pipe.metrics.posts_consumed._value.get() == 0, "nothing counted before delivery"
    count_delivered(pipe.metrics, out, len(batch))
    assert pipe.metrics.posts_consumed._value.get() == 3
    assert pipe.metrics.dead_letters.labels(reason="not_json")._value.get() == 1
    assert pipe.metrics.decisions.labels(action="remove")._value.get() == 2


async def test_a_shadow_pack_whose_model_fails_for_good_costs_only_its_shadow_decisions() -> None:
    # A candidate pack's mistake (a model name its server does not serve) must not end the
    # workers that enforce the live pack: its posts go without a shadow decision.
    live = BASE.model_copy(update={"id": "live"})
    model = BASE.model.model_copy(update={"backend": "openai", "id": "a-typo"})
    shadow = BASE.model_copy(update={"id": "candidate", "mode": "shadow", "model": model})
    backends = Backends(lambda backend, name: DeadEngine() if name == "a-typo" else Scores(name))
    pipe = pipeline(Scores("m"), live)
    pipe.backends = backends
    pipe.policies = PolicySet(live, shadows=(shadow,))
    out = await pipe.process(records("a", "b"))
    assert sorted(m.kind for m in out) == ["decision", "decision"]


def test_a_fallback_that_cannot_be_built_is_refused_when_the_pack_loads() -> None:
    # Found when the model goes down, it would end the worker just when it should fall back.
    def build(name: str) -> Classifier:
        raise FatalError(f"unknown classifier_backend {name!r}")

    pipe = pipeline(Scores("m"), pack("fallback"))
    pipe.degrade.build = build
    with pytest.raises(FatalError, match=r"pack default.*fallback.*embedded.*unknown"):
        pipe.check(pipe.policies.all())


def test_a_fallback_whose_model_id_decisions_cannot_carry_is_refused_when_the_pack_loads() -> None:
    # Its model_id goes on every decision it makes while the pack's model is down.
    model = BASE.model.model_copy(update={"on_model_down": "fallback", "fallback": "openai"})
    llm_fallback = BASE.model_copy(update={"model": model})
    pipe = pipeline(Scores("m"), llm_fallback, fallback=Scores("guard:" + "m" * 300))
    with pytest.raises(FatalError, match=r"MODFLEET_INFERENCE_MODEL.*fallback.*at most 256"):
        pipe.check(pipe.policies.all())
