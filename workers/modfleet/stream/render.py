"""HTML posts rendered in a child process (``normalise.render_child``), a batch at a time.

The renderer is a C++ HTML parser fed markup that posters write. In the worker's own process, a
crash or a hang in it on one post would end the worker, and then every worker the post's
partition went to next, at the same offset: one post would stop the fleet's partition. In a
child, a crash or a hang costs a new child: the batch is asked again a post at a time, and only
a post the renderer fails on alone is lost to it (the pipeline dead-letters it, naming why).
A batch of plain-text packs never starts the child.

A child that cannot start (the machine out of memory or processes, say) is no post's fault: the
batch is held, as for a model that is down (``RendererDown``), rather than dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Sequence
from typing import Literal

import orjson

from modfleet.errors import FatalError
from modfleet.ingest.decode import Post
from modfleet.metrics import Metrics
from modfleet.normalise import (
    Normalised,
    TextFormat,
    html_reach,
    normalise,
    read_rendered,
    writable,
)
from modfleet.normalise.markup import ends
from modfleet.normalise.render_child import READY
from modfleet.policy.packs import PolicySet
from modfleet.stream.infer import BackendDown
from modfleet.telemetry.tracing import BatchTrace

log = logging.getLogger(__name__)

Rendered = tuple[str, bool]  # the text a reader sees, and whether any of the post was left out
_Job = tuple[str, str | None]  # what the child renders: markup.ends of a post
_COMMAND = (sys.executable, "-m", "modfleet.normalise.render_child")
_CHECK, _CHECKED = b'[["<b>o</b>k", null]]\n', READY + b'[["ok",false]]\n'
# An answer is one line: a batch of large posts is tens of megabytes of it.
_LINE_LIMIT = 1 << 30


_Lost = Literal["crash", "hang", "garbage"]


class _ChildLost(Exception):
    """The child crashed, hung, or answered something else than the batch asked (``kind``)."""

    def __init__(self, kind: _Lost, why: str) -> None:
        super().__init__(why)
        self.kind = kind


class RendererDown(BackendDown):
    """A new child did not start: the worker holds the batch until one does."""

    part = "the HTML renderer"
    waits_for = "html_renderer"


class Renderer:
    """Renders ``(html, reach)`` jobs as ``normalise.markup.rendered`` does, in a child. A batch
    may wait ``timeout_s`` plus ``per_mib_s`` for each MiB it sends (the worst markup measured
    renders at about 3 MiB a second, and a long post only from its ends). A new child has
    ``start_timeout_s`` to say it is ready, apart from that, so that a slow start on a busy
    machine costs time, not posts."""

    def __init__(
        self,
        command: Sequence[str] = _COMMAND,
        timeout_s: float = 5.0,
        per_mib_s: float = 1.0,
        start_timeout_s: float = 30.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._command = tuple(command)
        self._timeout_s = timeout_s
        self._per_mib_s = per_mib_s
        self._start_timeout_s = start_timeout_s
        self._child: asyncio.subprocess.Process | None = None
        self._lock: asyncio.Lock | None = None  # made in the loop that first renders
        self._checked = False

    async def render(self, jobs: Sequence[tuple[str, int]]) -> list[Rendered | None]:
        """Each job's rendering, in order; None for one the renderer crashed or hung on when
        asked alone. Only the ends of a long post are sent (``markup.ends``), so the child
        holds what the packs read, not what the posts hold."""
        return await self._render([_sent(html, reach) for html, reach in jobs])

    async def _render(self, jobs: Sequence[_Job]) -> list[Rendered | None]:
        if not jobs:
            return []
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if len(jobs) > 1:
                try:
                    return list(await self._ask(jobs))
                except _ChildLost as exc:
                    self._count(exc)
                    log.warning("the HTML renderer failed on a batch of %d (%s)", len(jobs), exc)
            # Which post it was is unknown: each alone, so that only that one is lost.
            return [await self._alone(job) for job in jobs]

    def check(self) -> None:
        """Have a child render a line: FatalError if it cannot (its package missing, say), so
        that a pack that reads HTML is refused when it loads rather than every post it reads
        being dead-lettered. Once a renderer has passed, it is not asked again."""
        if self._checked:
            return
        try:
            done = subprocess.run(
                self._command, input=_CHECK, capture_output=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FatalError(f"the HTML renderer does not start: {exc}") from exc
        if done.stdout != _CHECKED:
            said = done.stderr.decode("utf-8", "replace").strip()[-500:]
            raise FatalError(f"the HTML renderer does not work (status {done.returncode}): {said}")
        self._checked = True

    async def close(self) -> None:
        await self._stop()

    async def _alone(self, job: _Job) -> Rendered | None:
        try:
            [answer] = await self._ask([job])
        except _ChildLost as exc:
            self._count(exc)
            log.error("the HTML renderer failed on a post: %s", exc)
            return None
        return answer

    def _count(self, lost: _ChildLost) -> None:
        if self._metrics is not None:
            self._metrics.html_renderer_failures.labels(lost.kind).inc()

    async def _ask(self, jobs: Sequence[_Job]) -> list[Rendered]:
        request = orjson.dumps(jobs) + b"\n"
        allowed = self._timeout_s + self._per_mib_s * len(request) / 2**20
        child = await self._started()
        if child.stdin is None or child.stdout is None:  # pragma: no cover - piped below
            raise _ChildLost("crash", "the child has no pipes")
        try:
            async with asyncio.timeout(allowed):
                child.stdin.write(request)
                await child.stdin.drain()
                line = await child.stdout.readline()
        except TimeoutError as exc:
            await self._stop()
            raise _ChildLost("hang", f"no answer in {allowed:.1f} s") from exc
        except (OSError, ValueError) as exc:  # a broken pipe; an answer past the line limit
            await self._stop()
            kind: _Lost = "crash" if isinstance(exc, OSError) else "garbage"
            raise _ChildLost(kind, f"{type(exc).__name__}: {exc}") from exc
        return await self._read(line, len(jobs))

    async def _read(self, line: bytes, count: int) -> list[Rendered]:
        if not line.endswith(b"\n"):
            code = await self._stop()
            raise _ChildLost("crash", f"the child ended (status {code})")
        try:
            answer = orjson.loads(line)
            found = [(text, cut) for text, cut in answer if type(text) is str and type(cut) is bool]
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            await self._stop()
            raise _ChildLost("garbage", "the child's answer is not the batch's") from exc
        if len(found) != count or len(answer) != count:
            await self._stop()
            raise _ChildLost("garbage", "the child's answer is not the batch's")
        return found

    async def _started(self) -> asyncio.subprocess.Process:
        if self._child is not None and self._child.returncode is None:
            return self._child
        try:
            self._child = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:  # no memory or processes left to start it
            raise RendererDown(f"the HTML renderer does not start: {exc}") from exc
        if self._child.stdout is None:  # pragma: no cover - piped above
            raise RendererDown("the HTML renderer has no pipes")
        try:
            async with asyncio.timeout(self._start_timeout_s):
                said = await self._child.stdout.readline()
        except TimeoutError as exc:
            await self._stop()
            late = f"not ready in {self._start_timeout_s:g} s"
            raise RendererDown(f"the HTML renderer does not start: {late}") from exc
        if said != READY:
            code = await self._stop()
            why = f"it said {said[:80]!r}" if said else f"it ended (status {code})"
            raise RendererDown(f"the HTML renderer does not start: {why}")
        return self._child

    async def _stop(self) -> int | None:
        child, self._child = self._child, None
        if child is None:
            return None
        if child.returncode is None:
            child.kill()
        return await child.wait()


Renderings = dict[tuple[int, int], Rendered | None]


async def render_posts(
    renderer: Renderer, posts: Sequence[Post], policies: PolicySet, trace: BatchTrace
) -> Renderings:
    """Each post an HTML pack reads, rendered for each reach its packs read it to, by (its
    place in ``posts``, reach); nothing is asked when no pack reads HTML. A text the batch
    repeats (a spam wave's) is rendered once. The wait is the trace's "render" stage."""
    if all(p.text.format == "plain" for p in policies.all()):
        return {}
    jobs: dict[tuple[int, int], tuple[str, int]] = {}
    for place, post in enumerate(posts):
        for pack in (policies.live_for(post.tenant), *policies.shadows_for(post.tenant)):
            if pack.text.format == "html":
                reach = html_reach(pack.limits.max_text_chars, pack.limits.max_windows)
                jobs[place, reach] = (post.text, reach)
    distinct = list(dict.fromkeys(jobs.values()))
    if not distinct:
        return {}
    with trace.stage("render"):
        found = dict(zip(distinct, await renderer.render(distinct), strict=True))
    return {at: found[job] for at, job in jobs.items()}


def _sent(html: str, reach: int) -> _Job:
    # Encodable (a lone surrogate becomes U+FFFD), as the in-process reading makes it.
    head, tail = ends(html, reach)
    return writable(head), None if tail is None else writable(tail)


class NotRendered(Exception):
    """The renderer failed on this post alone: the pipeline dead-letters it."""


Place = tuple[Renderings, int]  # a batch's renderings, and a post's place in the batch


def read_post(
    text: str, max_chars: int, windows: int, text_format: TextFormat, at: Place
) -> Normalised:
    """``normalise`` of a post, with an HTML pack's reading from its renderings."""
    if text_format == "plain":
        return normalise(text, max_chars, windows)
    renderings, place = at
    found = renderings.get((place, html_reach(max_chars, windows)))
    if found is None:
        raise NotRendered(
            "the HTML renderer failed on the post's text, asked alone (it crashed, hung or "
            "answered garbage; the worker's log says which)"
        )
    return read_rendered(found, max_chars, windows)
