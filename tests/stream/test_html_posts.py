"""A tenant whose platform writes HTML gets its posts read as its readers see them: markup a
browser renders away cannot get an insult allowed, and the tenant's format reaches no other
tenant. Real Redis, the real embedded model."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from posts import INSULT, encode, post

from modfleet.cache import connect_cache
from modfleet.contracts.schemas import violations
from modfleet.emit import Topics
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import Policy, load_policy
from modfleet.policy.model import TextIn
from modfleet.policy.packs import PolicySet
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry
from modfleet.stream.render import Renderer, RendererDown
from modfleet.telemetry.tracing import BatchTrace, Tracing

pytestmark = pytest.mark.integration

_RENDERER_FAILURES = "modfleet_html_renderer_failures_total"

# Crashes on a text holding CRASH, as a renderer with a bug could (tests/support).
FAULTY = (sys.executable, str(Path(__file__).parents[1] / "support" / "faulty_render_child.py"))

# How a platform that writes HTML may carry "fuck you" and "you are a worthless idiot" to its
# readers: each reads plainly in a browser, and the embedded model allowed each as written.
DISGUISED = {
    "tags": "f<b></b>u<b></b>c<b></b>k you",
    "references": "you are a worthless &#105;&#100;&#105;&#111;&#116;",
    "markup": "you are a worthless i<b></b>d<b></b>i<b></b>o<b></b>t",
}


def _pipeline(redis_url: str) -> tuple[Pipeline, Policy, Policy]:
    plain = load_policy(Settings(redis_url=redis_url).policy_path)
    html = plain.model_copy(update={"text": TextIn(format="html")})
    packs = PolicySet(default=plain, by_tenant={"forum": html})
    settings = Settings(redis_url=redis_url)
    metrics = Metrics()
    pipe = Pipeline(
        packs,
        EmbeddedClassifier(),
        connect_cache(settings, metrics),
        metrics,
        Topics.from_settings(settings),
        Retry(2, 0.01),
    )
    return pipe, plain, html


async def _decided(pipe: Pipeline, values: Sequence[bytes]) -> dict[str, dict[str, Any]]:
    """Each post's decision, every output checked against its schema."""
    try:
        out = await pipe.process(
            [Record("posts", 0, i, 1.7e9, None, v) for i, v in enumerate(values)]
        )
    finally:
        await pipe.cache.close()
        await pipe.renderer.close()
    for message in out:
        assert violations(message.kind, orjson.loads(message.value)) == []
    found = [orjson.loads(m.value) for m in out if m.kind == "decision"]
    return {d["post_id"]: d for d in found}


async def test_markup_cannot_disguise_abuse_from_a_pack_that_reads_html(redis_url: str) -> None:
    pipe, plain, html = _pipeline(redis_url)
    posts = [post(f"forum-{name}", text, tenant="forum") for name, text in DISGUISED.items()]
    posts += [post(f"other-{name}", text, tenant="other") for name, text in DISGUISED.items()]
    posts.append(post("forum-kind", "<p>the new bridge <b>finally</b> opened</p>", "forum"))
    values = [encode(p) for p in posts]
    decided = await _decided(pipe, values)
    assert len(decided) == len(posts)
    for name in DISGUISED:
        forum, other = decided[f"forum-{name}"], decided[f"other-{name}"]
        assert forum["action"] == "remove", (name, forum["scores"])
        assert forum["policy_digest"] == html.digest
        # The same bytes from a tenant whose platform writes plain text are read as written:
        # the forum's format is its own.
        assert other["action"] == "allow", (name, other["scores"])
        assert other["policy_digest"] == plain.digest
    assert decided["forum-kind"]["action"] == "allow"


async def test_a_markup_bomb_costs_its_own_post_and_its_end_is_read(redis_url: str) -> None:
    pipe, _, _ = _pipeline(redis_url)
    bomb = "<div>" * 600_000 + f"<p>{INSULT}</p>"  # 3 MB: a million-deep tree, were it whole
    values = [
        encode(post("bomb", bomb, tenant="forum")),
        encode(post("kind", "<p>my sourdough starter survived the week</p>", tenant="forum")),
        encode(post("rude", DISGUISED["markup"], tenant="forum")),
    ]
    decided = await _decided(pipe, values)
    assert decided["bomb"]["action"] == "remove"
    assert decided["bomb"]["truncated"] is True
    assert (decided["kind"]["action"], decided["rude"]["action"]) == ("allow", "remove")


async def test_a_post_that_breaks_the_renderer_is_dead_lettered_and_its_batch_decided(
    redis_url: str,
) -> None:
    pipe, _, _ = _pipeline(redis_url)
    pipe.renderer = Renderer(FAULTY, timeout_s=2, metrics=pipe.metrics)
    values = [
        encode(post("breaker", "<p>CRASH</p>", tenant="forum")),
        encode(post("rude", DISGUISED["tags"], tenant="forum")),
        encode(post("plain", "CRASH, said the plain-text post", tenant="other")),
    ]
    records = [Record("posts", 0, i, 1.7e9, None, v) for i, v in enumerate(values)]
    try:
        out = await pipe.process(records)
        again = await pipe.process(records[1:2])  # a new child for the next batch
    finally:
        await pipe.cache.close()
        await pipe.renderer.close()
    [letter] = [orjson.loads(m.value) for m in out if m.kind == "dead_letter"]
    assert letter["post_id"] == "breaker"
    assert letter["reason"]["code"] == "internal_error"
    assert "HTML renderer" in letter["reason"]["message"]
    decided = {
        d["post_id"]: d["action"]
        for d in (orjson.loads(m.value) for m in out if m.kind == "decision")
    }
    assert (decided["rude"], decided["plain"]) == ("remove", "allow")
    assert [orjson.loads(m.value)["action"] for m in again] == ["remove"]
    crashes = {"kind": "crash"}
    assert pipe.metrics.registry.get_sample_value(_RENDERER_FAILURES, crashes) == 2


async def test_a_renderer_that_cannot_start_holds_the_batch_rather_than_dead_letter_it(
    redis_url: str,
) -> None:
    # As a machine out of memory or processes would have it: no post's fault, so none is lost.
    pipe, _, _ = _pipeline(redis_url)
    pipe.renderer = Renderer((sys.executable, "-c", "raise SystemExit('cannot fork')"))
    values = [
        encode(post("rude", DISGUISED["tags"], tenant="forum")),
        encode(post("plain", "have a nice day", tenant="other")),
    ]
    records = [Record("posts", 0, i, 1.7e9, None, v) for i, v in enumerate(values)]
    try:
        with pytest.raises(RendererDown, match="does not start"):
            await pipe.process(records)
        with pytest.raises(RendererDown, match="does not start"):
            await pipe.process_isolated(records)  # nor a post at a time
        pipe.renderer = Renderer()  # the machine recovers: the held batch is decided
        out = await pipe.process(records)
    finally:
        await pipe.cache.close()
        await pipe.renderer.close()
    decided = {d["post_id"]: d["action"] for d in (orjson.loads(m.value) for m in out)}
    assert decided == {"rude": "remove", "plain": "allow"}


class _Stages(BatchTrace):
    """The stage names a batch's trace records, in order."""

    def __init__(self) -> None:
        super().__init__(Tracing(None))
        self.names: list[str] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.names.append(name)
        yield


async def test_the_wait_for_the_renderer_is_its_own_stage_of_the_trace(redis_url: str) -> None:
    # An SRE reading a slow HTML tenant's trace sees the rendering apart from the validation.
    pipe, _, _ = _pipeline(redis_url)
    html, plain = _Stages(), _Stages()
    try:
        await pipe.process(
            [Record("posts", 0, 0, 1.7e9, None, encode(post("h", "<p>hi</p>", tenant="forum")))],
            html,
        )
        await pipe.process([Record("posts", 0, 1, 1.7e9, None, encode(post("p", "hi")))], plain)
    finally:
        await pipe.cache.close()
        await pipe.renderer.close()
    assert html.names[:3] == ["validate", "render", "validate"]
    assert plain.names[:2] == ["validate", "validate"]  # a batch with no HTML renders nothing
    assert "render" not in plain.names


async def test_plain_text_packs_never_start_the_renderer(redis_url: str) -> None:
    pipe, plain, _ = _pipeline(redis_url)
    pipe.policies = PolicySet.single(plain)
    pipe.renderer = Renderer(FAULTY)
    try:
        out = await pipe.process([Record("posts", 0, 0, 1.7e9, None, encode(post("p", "CRASH")))])
    finally:
        await pipe.cache.close()
    assert [m.kind for m in out] == ["decision"]
