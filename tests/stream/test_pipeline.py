"""The pipeline over one micro-batch, with the real model and a real Redis (no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

import orjson
import pytest
from posts import encode, post

from modfleet.cache import connect_cache
from modfleet.contracts.schemas import violations
from modfleet.emit import Topics
from modfleet.errors import FatalError, RejectedInput
from modfleet.inference import Classifier, Verdict
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import Policy, load_policy
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry

pytestmark = pytest.mark.integration


class Wrapped(Classifier):
    """The embedded model inside a test's classifier."""

    def __init__(self) -> None:
        self.inner = EmbeddedClassifier()
        self.model_id = self.inner.model_id


class Counting(Wrapped):
    """The embedded model, recording every text it is asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        self.seen.extend(texts)
        return await self.inner.classify(texts, policy)


def records(values: list[bytes]) -> list[Record]:
    return [Record("posts", 0, i, 1_700_000_000.0, None, v) for i, v in enumerate(values)]


def pipeline(settings: Settings, classifier: Classifier, retry: Retry | None = None) -> Pipeline:
    metrics = Metrics()
    return Pipeline(
        load_policy(settings.policy_path),
        classifier,
        connect_cache(settings, metrics),
        metrics,
        Topics.from_settings(settings),
        retry or Retry(2, 0.01),
    )


async def test_identical_posts_in_one_batch_are_classified_once(
    make_settings: Callable[..., Settings],
) -> None:
    classifier = Counting()
    pipe = pipeline(make_settings(cache_enabled=False), classifier)
    text = "you are a complete idiot"
    out = await pipe.process(records([encode(post(f"d-{i}", text)) for i in range(5)]))
    assert classifier.seen == [text]
    decisions = [orjson.loads(m.value) for m in out if m.kind == "decision"]
    assert len(decisions) == 5
    assert len({orjson.dumps(d["scores"]) for d in decisions}) == 1


async def test_second_batch_is_served_from_redis(make_settings: Callable[..., Settings]) -> None:
    classifier = Counting()
    pipe = pipeline(make_settings(), classifier)
    first = await pipe.process(records([encode(post("a-1", "a fresh text about gardens"))]))
    again = await pipe.process(records([encode(post("a-2", "a fresh  text about gardens\u200b"))]))
    assert classifier.seen == ["a fresh text about gardens"]
    one, two = (orjson.loads(m[0].value) for m in (first, again))
    assert (one["from_cache"], two["from_cache"]) == (False, True)
    assert one["content_hash"] == two["content_hash"]


async def test_every_record_gets_exactly_one_outcome(
    make_settings: Callable[..., Settings],
) -> None:
    pipe = pipeline(make_settings(), Counting())
    values = [encode(post("ok-1", "hello")), b"not json", encode({"post_id": "x"})]
    out = await pipe.process(records(values))
    kinds = sorted(m.kind for m in out)
    assert kinds == ["dead_letter", "dead_letter", "decision"]
    assert {m.key for m in out if m.kind == "decision"} == {b"ok-1"}


async def test_with_writes_the_decisions_do_not_wait_for_the_cache_write(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real Redis behind a write that is held back: the decisions come out first, the write
    # lands once released, and the next batch is served from it.
    classifier = Counting()
    pipe = pipeline(make_settings(), classifier)
    release = asyncio.Event()
    write_to_redis = pipe.cache.put_many

    async def held(verdicts: Mapping[str, Verdict], packs: Mapping[str, Policy]) -> None:
        await release.wait()
        await write_to_redis(verdicts, packs)

    monkeypatch.setattr(pipe.cache, "put_many", held)
    writes: list[asyncio.Task[None]] = []
    text = "a held write about tulips"
    out = await asyncio.wait_for(
        pipe.process(records([encode(post("w-1", text))]), writes=writes), timeout=10
    )
    assert [m.kind for m in out] == ["decision"]
    assert len(writes) == 1
    assert not writes[0].done()
    release.set()
    await asyncio.wait_for(asyncio.gather(*writes), timeout=10)
    again = await pipe.process(records([encode(post("w-2", text))]))
    assert orjson.loads(again[0].value)["from_cache"] is True
    assert classifier.seen == [text]


class NaNFor(Wrapped):
    """The embedded model, except that one text gets a NaN score (a broken backend)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        verdicts = await self.inner.classify(texts, policy)
        return [
            Verdict(scores=dict.fromkeys(v.scores, float("nan"))) if t == self.text else v
            for t, v in zip(texts, verdicts, strict=True)
        ]


async def test_a_verdict_that_cannot_be_cached_costs_its_post_alone(
    make_settings: Callable[..., Settings],
) -> None:
    # The cache write runs under the delivery: an unsealable verdict (NaN) must neither fail
    # the write for its neighbours nor the batch; its own post is dead-lettered.
    broken, fine = "a post the backend breaks on", "a post about quiet libraries"
    pipe = pipeline(make_settings(), NaNFor(broken))
    writes: list[asyncio.Task[None]] = []
    out = await pipe.process(
        records([encode(post("n-1", broken)), encode(post("n-2", fine))]), writes=writes
    )
    await asyncio.wait_for(asyncio.gather(*writes), timeout=10)
    assert sorted(m.kind for m in out) == ["dead_letter", "decision"]
    again = await pipe.process(records([encode(post("n-3", fine))]))
    assert orjson.loads(again[0].value)["from_cache"] is True


class Escalating(Classifier):
    """Scores every text at the default pack's harassment escalation threshold."""

    model_id = "escalating"

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        return [Verdict({}, categories={"harassment": 0.8}) for _ in texts]


async def test_a_refused_output_is_stood_in_for_by_a_dead_letter_naming_its_post(
    make_settings: Callable[..., Settings],
) -> None:
    # The broker refuses a decision or an escalation for good: its minimal dead-letter names
    # the post and tenant, so that a consumer waiting on that post's outcomes sees it settled.
    pipe = pipeline(make_settings(cache_enabled=False), Escalating())
    out = await pipe.process(records([encode(post("refused-1", "a text", tenant="beta"))]))
    assert {m.kind for m in out} >= {"decision", "escalation"}
    for message in out:
        stand_in = pipe.undeliverable(message)
        assert stand_in is not None
        assert stand_in.kind == "dead_letter"
        body = orjson.loads(stand_in.value)
        assert (body["post_id"], body["tenant"]) == ("refused-1", "beta")
        assert body["reason"]["code"] == "undeliverable"
        assert violations("dead_letter", body) == []


class Hanging(Wrapped):
    """The embedded model, except that any batch holding ``trap`` never comes back."""

    def __init__(self, trap: str) -> None:
        super().__init__()
        self.trap = trap

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if self.trap in texts:
            await asyncio.Event().wait()  # a backend stuck on this one text
        return await self.inner.classify(texts, policy)


async def test_a_text_the_backend_hangs_on_costs_that_post_after_the_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    trap = "a text the backend never answers"
    s = make_settings(cache_enabled=False)
    pipe = pipeline(s, Hanging(trap), Retry(2, 0.0, timeout_s=0.2))
    values = [encode(post("h-1", "hello there")), encode(post("h-2", trap))]
    out = await asyncio.wait_for(pipe.process(records(values)), timeout=10)
    by_post = {m.key: m for m in out}
    assert by_post[b"h-1"].kind == "decision"
    lost = orjson.loads(by_post[b"h-2"].value)
    assert by_post[b"h-2"].kind == "dead_letter"
    assert lost["reason"]["code"] == "inference_failed"
    assert "took over 0.2 s" in lost["reason"]["message"]


class HangingOnMany(Wrapped):
    """The embedded model, except that any call holding a text that starts with ``trap`` never
    comes back; it counts the calls in flight."""

    def __init__(self, trap: str) -> None:
        super().__init__()
        self.trap = trap
        self.in_flight = self.most_in_flight = 0

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if any(text.startswith(self.trap) for text in texts):
                await asyncio.Event().wait()
            return await self.inner.classify(texts, policy)
        finally:
            self.in_flight -= 1


async def test_posts_the_backend_hangs_on_are_asked_side_by_side_not_one_timeout_after_another(
    make_settings: Callable[..., Settings],
) -> None:
    # Asked one at a time, a batch holding n such posts took n timeouts (30 s each by default)
    # before any of its posts was decided: a poster could stall a partition for minutes.
    s = make_settings(cache_enabled=False)
    model = HangingOnMany("never answered")
    pipe = pipeline(s, model, Retry(1, 0.0, timeout_s=0.3))
    traps = [encode(post(f"t-{i}", f"never answered {i}")) for i in range(6)]
    fine = [encode(post(f"f-{i}", f"hello there {i}")) for i in range(6)]
    out = await asyncio.wait_for(pipe.process(records(traps + fine)), timeout=30)
    by_post = {m.key: m for m in out}
    for i in range(6):
        assert by_post[f"f-{i}".encode()].kind == "decision"
        lost = orjson.loads(by_post[f"t-{i}".encode()].value)
        assert lost["reason"]["code"] == "inference_failed"
        assert "took over 0.3 s" in lost["reason"]["message"]
    assert model.most_in_flight >= 6, "the hanging posts were asked one after another"
    assert model.in_flight == 0, "a call was left running"


class DyingOnOne(Wrapped):
    """Fails any batch of more than one text; asked about ``word`` alone, its engine dies."""

    def __init__(self, word: str) -> None:
        super().__init__()
        self.word = word

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if len(texts) > 1:
            raise ConnectionResetError("the server closed the connection")
        if self.word in texts[0]:
            raise FatalError("the engine died")
        await asyncio.sleep(0.01)
        return await self.inner.classify(texts, policy)


async def test_an_engine_that_dies_while_posts_are_asked_alone_stops_the_worker(
    make_settings: Callable[..., Settings],
) -> None:
    # Asked side by side, the posts' calls run in a task group: the engine's death must still
    # reach the agent as itself (which stops the worker), not wrapped in an ExceptionGroup.
    s = make_settings(cache_enabled=False)
    pipe = pipeline(s, DyingOnOne("fatal"), Retry(1, 0.0))
    values = [encode(post(f"d-{i}", f"hello {i}")) for i in range(5)]
    values.append(encode(post("d-x", "fatal text")))
    with pytest.raises(FatalError, match="the engine died"):
        await pipe.process(records(values))


class Refusing(Wrapped):
    """The embedded model, behind a server that refuses any request holding a text as long as
    ``limit`` or longer, as vLLM refuses a prompt over its context length (or holding ``word``
    at all)."""

    def __init__(self, limit: int, word: str | None = None) -> None:
        super().__init__()
        self.limit = limit
        self.word = word  # refused at any length (a server's filter, not its context)
        self.calls = 0

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        self.calls += 1
        if any(len(t) >= self.limit or (self.word and self.word in t) for t in texts):
            raise RejectedInput("HTTP 400: This model's maximum context length is 4096 tokens")
        return await self.inner.classify(texts, policy)


async def test_a_post_over_the_models_context_is_decided_on_its_first_part_and_says_so(
    make_settings: Callable[..., Settings],
) -> None:
    # Emoji and rare scripts cost several tokens a character: a post under the pack's 20,000
    # characters can be over the model's context. Dead-lettered (as before), such a post was
    # never moderated; a poster could write past any model that way.
    s = make_settings(cache_enabled=False)
    model = Refusing(limit=5_000)
    pipe = pipeline(s, model, Retry(3, 0.0))
    long_text = "\U0001f4a3 " * 4_000  # under the pack's 20,000 characters, over the model's
    values = [encode(post("r-1", "hello there")), encode(post("r-2", long_text))]
    out = await pipe.process(records(values))
    by_post = {m.key: m for m in out}
    assert by_post[b"r-1"].kind == "decision"
    assert orjson.loads(by_post[b"r-1"].value)["truncated"] is False
    assert by_post[b"r-2"].kind == "decision"
    decided = orjson.loads(by_post[b"r-2"].value)
    assert decided["truncated"] is True, "the decision says the model saw only a part"
    # No retry of the refused batch: the batch once, the probe, each post once, then the
    # refused one's first half and its last half.
    assert model.calls == 6


async def test_filler_before_the_abuse_does_not_hide_it_from_a_model_that_refused_the_whole(
    make_settings: Callable[..., Settings],
) -> None:
    # Judged on its first half alone, "lol lol ... you are a useless idiot" was allowed: the
    # model saw only the filler. Its last part is judged too, and the worse verdict stands.
    s = make_settings(cache_enabled=False)
    pipe = pipeline(s, Refusing(limit=5_000), Retry(3, 0.0))
    text = "lol " * 2_000 + "@jamie you are a useless idiot and everyone at work knows it"
    out = await pipe.process(records([encode(post("r-5", text))]))
    (decided,) = [orjson.loads(m.value) for m in out if m.kind == "decision"]
    assert decided["truncated"] is True
    assert decided["action"] != "allow", decided["scores"]


async def test_a_post_the_model_refuses_however_short_is_dead_lettered_alone(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(cache_enabled=False)
    model = Refusing(limit=5_000, word="\U0001f4a3")
    pipe = pipeline(s, model, Retry(3, 0.0))
    values = [encode(post("r-1", "hello there")), encode(post("r-2", "\U0001f4a3 " * 4_000))]
    out = await pipe.process(records(values))
    by_post = {m.key: m for m in out}
    assert by_post[b"r-1"].kind == "decision"
    assert by_post[b"r-2"].kind == "dead_letter"
    lost = orjson.loads(by_post[b"r-2"].value)
    assert lost["reason"]["code"] == "inference_failed"
    assert "RejectedInput" in lost["reason"]["message"]
    assert "context length" in lost["reason"]["message"]
    assert model.calls <= 4 + 6, "a few halvings, not one request a character"


class RefusingThenFailing(Refusing):
    """Refuses a long text, then fails on any part of it: a server that falls over."""

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if len(texts) == 1 and "\U0001f4a3" in texts[0] and len(texts[0]) < self.limit:
            self.calls += 1
            raise ConnectionResetError("the server closed the connection")
        return await super().classify(texts, policy)


async def test_a_failure_while_asking_again_on_a_part_costs_that_post_alone(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(cache_enabled=False)
    pipe = pipeline(s, RefusingThenFailing(limit=5_000), Retry(3, 0.0))
    values = [encode(post("r-1", "hello there")), encode(post("r-2", "\U0001f4a3 " * 4_000))]
    by_post = {m.key: m for m in await pipe.process(records(values))}
    assert by_post[b"r-1"].kind == "decision"
    assert by_post[b"r-2"].kind == "dead_letter"
    assert "context length" in orjson.loads(by_post[b"r-2"].value)["reason"]["message"]


async def test_a_model_that_refuses_even_the_probe_stops_the_worker(
    make_settings: Callable[..., Settings],
) -> None:
    # Every post refused is the model's configuration (a context shorter than the pack's
    # prompt), not the posts: dead-lettering them all would empty the stream for nothing.
    s = make_settings(cache_enabled=False)
    pipe = pipeline(s, Refusing(limit=0), Retry(3, 0.0))
    with pytest.raises(FatalError, match="refuses even a plain text"):
        await pipe.process(records([encode(post("r-3", "hello there"))]))
