"""HTML posts are rendered in a child process: a renderer that crashes, hangs or answers
garbage on one post costs that post, never its batch or the worker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modfleet.cache import connect_cache
from modfleet.emit import Topics
from modfleet.errors import FatalError
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.ingest.decode import Post
from modfleet.metrics import Metrics
from modfleet.normalise.markup import rendered
from modfleet.policy import load_policy
from modfleet.policy.model import TextIn
from modfleet.policy.packs import PolicySet
from modfleet.resources import default_policy_path
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry
from modfleet.stream.render import Renderer, RendererDown, render_posts
from modfleet.telemetry.tracing import Tracing

FAULTY = (sys.executable, str(Path(__file__).parents[1] / "support" / "faulty_render_child.py"))
JOBS = [
    ("<p>you are an id<b></b>iot</p>", 1_000),
    ("&#107;ind words", 1_000),
    ("<div>" * 50 + "deep", 10),  # rendered from its ends only
]


async def test_the_child_renders_as_the_worker_itself_would() -> None:
    renderer = Renderer()
    try:
        assert await renderer.render(JOBS) == [rendered(html, reach) for html, reach in JOBS]
        assert await renderer.render([]) == []
        assert await renderer.render(JOBS[:1]) == [rendered(*JOBS[0])]  # the same child again
    finally:
        await renderer.close()


@pytest.mark.parametrize(
    ("fault", "kind"), [("CRASH", "crash"), ("HANG", "hang"), ("GARBAGE", "garbage")]
)
async def test_a_post_the_renderer_fails_on_costs_that_post_alone(fault: str, kind: str) -> None:
    metrics = Metrics()
    renderer = Renderer(FAULTY, timeout_s=2, metrics=metrics)
    batch = [*JOBS[:2], (f"<p>{fault}</p>", 1_000), JOBS[2]]
    try:
        found = await renderer.render(batch)
        assert found == [rendered(*JOBS[0]), rendered(*JOBS[1]), None, rendered(*JOBS[2])]
        # The next batch finds a working child.
        assert await renderer.render(JOBS) == [rendered(html, reach) for html, reach in JOBS]
    finally:
        await renderer.close()
    # An SRE sees which: the child lost on the batch, then on the post alone.
    lost = metrics.registry.get_sample_value(
        "modfleet_html_renderer_failures_total", {"kind": kind}
    )
    assert lost == 2


async def test_a_child_slow_to_start_costs_no_post() -> None:
    # The batch's deadline is for rendering: a child's start (a Python process and the parser's
    # import, longer on a busy machine) has its own, so a slow start loses no post.
    renderer = Renderer((*FAULTY, "--start-after", "3"), timeout_s=1)
    try:
        assert await renderer.render(JOBS) == [rendered(html, reach) for html, reach in JOBS]
    finally:
        await renderer.close()


@pytest.mark.parametrize(
    ("start", "wait_s", "said"),
    [
        ("raise SystemExit('out of memory')", 30, "ended"),
        ("import time; time.sleep(60)", 1, "not ready in 1 s"),
        ("print('Traceback (most recent call last):')", 30, "said b'Traceback"),
    ],
)
async def test_a_child_that_does_not_start_is_an_outage_not_a_posts_fault(
    start: str, wait_s: float, said: str
) -> None:
    # No post was read: the worker holds the batch (RendererDown) rather than dead-letter it.
    renderer = Renderer((sys.executable, "-c", start), start_timeout_s=wait_s)
    try:
        with pytest.raises(RendererDown, match=f"does not start: .*{said}"):
            await renderer.render(JOBS)
    finally:
        await renderer.close()


async def test_a_wave_of_one_html_post_is_rendered_once_a_batch(tmp_path: Path) -> None:
    # A spam wave repeats one text: its batch costs the child one rendering, not one a post.
    asked = tmp_path / "asked"
    renderer = Renderer((*FAULTY, "--count", str(asked)))
    html = load_policy(default_policy_path()).model_copy(update={"text": TextIn(format="html")})
    wave = [
        Post(f"w{i}", "forum", "<p>buy f<b></b>ollowers at spam.example</p>") for i in range(300)
    ]
    posts = [*wave, Post("kind", "forum", "&#107;ind words")]
    try:
        found = await render_posts(renderer, posts, PolicySet.single(html), Tracing(None).batch())
    finally:
        await renderer.close()
    assert asked.read_text().split() == ["2"]
    assert set(found.values()) == {("buy followers at spam.example", False), ("kind words", False)}
    assert sorted(place for place, _ in found) == list(range(len(posts)))


def test_a_renderer_that_cannot_start_refuses_the_pack_when_it_loads(
    redis_url: str,
) -> None:
    # Rather than every post the pack reads being dead-lettered once it runs.
    broken = Renderer((sys.executable, "-c", "raise SystemExit('no renderer here')"))
    with pytest.raises(FatalError, match="no renderer here"):
        broken.check()
    Renderer().check()  # the real one starts
    pipe = Pipeline(
        PolicySet.single(load_policy(default_policy_path())),
        EmbeddedClassifier(),
        connect_cache(Settings(redis_url=redis_url), Metrics()),
        Metrics(),
        Topics.from_settings(Settings()),
        Retry(1, 0.01),
    )
    pipe.renderer = broken
    plain = pipe.policies.default
    pipe.check([plain])  # plain text: the renderer is not needed
    with pytest.raises(FatalError, match="HTML renderer"):
        pipe.check([plain.model_copy(update={"text": TextIn(format="html")})])
