"""A model outage in the middle of a stream slows the fleet down; it does not empty it.

A real worker on the real broker, its model switched off for a while mid-stream: with the
default ``on_model_down: wait`` nothing is dead-lettered or lost, /ready says no during the
outage and yes after, and the backlog drains; with ``fallback`` every post is decided during
the outage, and those decisions name the fallback model and the one it stood in for.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from flaky import outage_flag
from posts import encode, post, unique_texts

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

SUPPORT = Path(__file__).parents[1] / "support"
POSTS = 20_000
OUTAGE_S = 30.0


def ready(settings: Settings) -> bool:
    url = f"http://{settings.web_host}:{settings.web_port}/ready"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def gauge(settings: Settings, name: str) -> float:
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"{name} is not on /metrics")


def pack_with(tmp_path: Path, on_model_down: str) -> Path:
    pack = yaml.safe_load(Path(Settings().policy_path).read_text(encoding="utf-8"))
    pack["model"] = {
        "backend": "openai",  # the plugin serves it here; the fallback is the embedded model
        "id": "switched",
        "on_model_down": on_model_down,
        "fallback": "embedded",
    }
    pack.pop("gate", None)
    path = tmp_path / "pack.yaml"
    path.write_text(yaml.safe_dump(pack), encoding="utf-8")
    return path


async def run_with_outage(
    settings: Settings, tmp_path: Path
) -> tuple[set[str], list[bool], list[bool]]:
    await create_topics(settings, replication_factor=1, partitions=2)
    made = [post(f"o-{i}", t) for i, t in enumerate(unique_texts(POSTS, seed=3))]
    flag = outage_flag(settings)
    flag.unlink(missing_ok=True)
    during: list[bool] = []
    after: list[bool] = []
    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, [encode(p) for p in made[: POSTS // 4]])
        await collect_outcomes(settings, POSTS // 4, timeout_s=120)
        flag.touch()
        try:
            await produce_posts(settings, [encode(p) for p in made[POSTS // 4 :]])
            ends = time.monotonic() + OUTAGE_S
            while time.monotonic() < ends:
                during.append(await asyncio.to_thread(ready, settings))
                await asyncio.sleep(1)
            # What an SRE's alert reads: the model, not the HTML renderer.
            assert await asyncio.to_thread(gauge, settings, "modfleet_model_down") == 1
            assert await asyncio.to_thread(gauge, settings, "modfleet_html_renderer_down") == 0
        finally:
            flag.unlink(missing_ok=True)
        outcomes = await collect_outcomes(settings, POSTS, timeout_s=180)
        for _ in range(3):
            after.append(await asyncio.to_thread(ready, settings))
            await asyncio.sleep(0.5)
        assert await asyncio.to_thread(gauge, settings, "modfleet_model_down") == 0
    assert outcomes.dead_letters == [], outcomes.dead_letters[:3]
    decided = {d["post_id"] for d in outcomes.decisions}
    assert decided == {p["post_id"] for p in made}, "0 lost"
    return decided, during, after


@pytest.fixture(autouse=True)
def plugins_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(SUPPORT))  # the worker child imports flaky.py


async def test_wait_holds_the_stream_and_drains_the_backlog_after(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        classifier_plugin="flaky:down_while_flagged",
        policy_path=pack_with(tmp_path, "wait"),
        retry_backoff_s=0.05,
    )
    _, during, after = await run_with_outage(settings, tmp_path)
    assert during[-5:] == [False] * 5, f"/ready during the outage: {during}"
    assert after[-1] is True, f"/ready after: {after}"


async def test_fallback_decides_every_post_during_the_outage_and_says_so(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        classifier_plugin="flaky:down_while_flagged",
        policy_path=pack_with(tmp_path, "fallback"),
        retry_backoff_s=0.05,
    )
    await create_topics(settings, replication_factor=1, partitions=2)
    made = [post(f"f-{i}", t) for i, t in enumerate(unique_texts(2_000, seed=4))]
    flag = outage_flag(settings)
    flag.touch()
    try:
        with worker_process(settings, tmp_path / "worker.log"):
            await produce_posts(settings, [encode(p) for p in made])
            outcomes = await collect_outcomes(settings, len(made), timeout_s=120)
            still_ready = await asyncio.to_thread(ready, settings)
    finally:
        flag.unlink(missing_ok=True)
    assert outcomes.dead_letters == []
    assert {d["post_id"] for d in outcomes.decisions} == {p["post_id"] for p in made}
    fallbacks = {(d["model_id"], d.get("fallback_from")) for d in outcomes.decisions}
    assert len(fallbacks) == 1
    [(model_id, fallback_from)] = fallbacks
    assert fallback_from is not None
    assert fallback_from.startswith("switched/")
    assert not model_id.startswith("switched/")
    assert still_ready, "a pack that falls back keeps consuming"
