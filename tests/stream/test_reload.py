"""Hot reload of policy packs on a running pipeline: a pack set that cannot be read is refused,
the running one kept, and the worker goes on (a failure here once ended the worker)."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from modfleet.cache import connect_cache
from modfleet.emit import Topics
from modfleet.errors import FatalError
from modfleet.inference import Classifier, Verdict
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.inference.routing import Backends
from modfleet.metrics import Metrics
from modfleet.policy import Policy
from modfleet.policy.packs import load_policy_set
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry
from modfleet.stream import reload as reload_module
from modfleet.stream.reload import PolicyReloader
from modfleet.stream.render import Renderer

pytestmark = pytest.mark.integration


def reloader(make_settings: Callable[..., Settings], folder: Path) -> PolicyReloader:
    shutil.copy(Settings().policy_path, folder / "default.yaml")
    s = make_settings(policy_path=folder)
    metrics = Metrics()
    pipeline = Pipeline(
        load_policy_set(folder),
        EmbeddedClassifier(),
        connect_cache(s, metrics),
        metrics,
        Topics.from_settings(s),
        Retry(1, 0.0),
    )
    return PolicyReloader(folder, pipeline, metrics)


def refusals(r: PolicyReloader) -> float:
    return r.metrics.policy_reloads.labels(result="refused")._value.get()


@pytest.mark.parametrize(
    "tail", ["# pasted from a document: \x0c\n", "x: " + "[" * 5000 + "]" * 5000 + "\n"]
)
async def test_a_pack_yaml_cannot_read_is_refused_and_the_running_set_kept(
    make_settings: Callable[..., Settings], tmp_path: Path, tail: str
) -> None:
    r = reloader(make_settings, tmp_path)
    running = r.pipeline.policies
    pack = tmp_path / "default.yaml"
    pack.write_text(pack.read_text() + tail)
    assert await r.check() is False
    assert r.pipeline.policies is running
    assert refusals(r) == 1
    assert await r.check() is False  # once per bad revision
    assert refusals(r) == 1


async def test_an_unforeseen_failure_of_a_reload_is_a_refusal_not_the_workers_end(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = reloader(make_settings, tmp_path)
    running = r.pipeline.policies

    def broken(path: Path) -> None:
        raise RuntimeError("the pack loader broke")

    monkeypatch.setattr(reload_module, "load_policy_set", broken)
    pack = tmp_path / "default.yaml"
    pack.write_text(pack.read_text() + "# edited\n")
    assert await r.check() is False
    assert r.pipeline.policies is running
    assert refusals(r) == 1
    monkeypatch.undo()
    pack.write_text(pack.read_text() + "# edited again\n")
    assert await r.check() is True  # the next revision applies as usual


class NotServed(Classifier):
    """A server that does not serve the model a pack names (vLLM's 404: FatalError)."""

    model_id = "openai:a-typo"

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        raise FatalError("HTTP 404: the model `a-typo` does not exist")


@pytest.mark.parametrize("mode", ["shadow", "live"])
async def test_a_pack_whose_model_the_server_does_not_serve_is_refused_at_reload(
    make_settings: Callable[..., Settings], tmp_path: Path, mode: str
) -> None:
    # Every worker reads the same ConfigMap: applied, the pack would end each of them on its
    # first batch, and again after each restart, whatever the live pack's own model.
    r = reloader(make_settings, tmp_path)
    embedded = EmbeddedClassifier()
    r.pipeline.backends = Backends(lambda backend, model: NotServed() if model else embedded)
    running = r.pipeline.policies
    candidate = (tmp_path / "default.yaml").read_text()
    candidate = candidate.replace("id: default", "id: candidate", 1)
    candidate = candidate.replace("backend: embedded", "backend: openai", 1)
    candidate = candidate.replace("id: modfleet-embedded", "id: a-typo", 1)
    if mode == "shadow":
        (tmp_path / "candidate.yaml").write_text(candidate + "\nmode: shadow\n")
    else:
        (tmp_path / "default.yaml").write_text(candidate)
    assert await r.check() is False
    assert r.pipeline.policies is running
    assert refusals(r) == 1


class LoopGaps:
    """The longest the event loop went without turning while it was watched: a blocked loop
    stops the consumer's heartbeat (a rebalance of the whole group, as every worker reloads the
    same files at once), the /health page and the worker's own watchdog."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.02)
            now = loop.time()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> LoopGaps:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        await asyncio.sleep(0)  # it has begun to watch
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.05)  # it has seen the last stretch
        assert self._task is not None
        self._task.cancel()


async def test_a_reload_that_builds_a_slow_model_keeps_the_loop_turning(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # A pack naming a model this worker has not built yet (an in-process engine takes seconds
    # to minutes to load): built on the loop, the worker stopped for that long.
    r = reloader(make_settings, tmp_path)
    embedded = EmbeddedClassifier()

    def build(backend: str, model: str) -> Classifier:
        if model:
            time.sleep(1.5)  # what loading a model's weights costs, holding the thread
        return embedded

    r.pipeline.backends = Backends(build)
    r.pipeline.backends.check(r.pipeline.policies.all())
    pack = tmp_path / "default.yaml"
    pack.write_text(pack.read_text().replace("id: modfleet-embedded", "id: modfleet-embedded@1"))
    async with LoopGaps() as gaps:
        assert await r.check() is True
    assert gaps.longest < 1.0, f"the loop stood still for {gaps.longest:.2f} s"
    assert r.pipeline.policies.all()[0].model.id == "modfleet-embedded@1"


async def test_a_reload_that_starts_the_html_renderer_keeps_the_loop_turning(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # The first pack that reads HTML has the renderer checked in a child; on a busy pod its
    # start takes seconds (its deadline is 60 s, the watchdog's default).
    r = reloader(make_settings, tmp_path)
    slow = f"sleep 1.5; exec {shlex.quote(sys.executable)} -m modfleet.normalise.render_child"
    r.pipeline.renderer = Renderer(command=["sh", "-c", slow])
    pack = tmp_path / "default.yaml"
    pack.write_text(pack.read_text().replace("format: plain", "format: html", 1))
    async with LoopGaps() as gaps:
        assert await r.check() is True
    assert gaps.longest < 1.0, f"the loop stood still for {gaps.longest:.2f} s"
    assert r.pipeline.policies.all()[0].text.format == "html"
