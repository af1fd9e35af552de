"""What an orchestrator and a scraper see of a worker: liveness, readiness, metrics; nothing of
faust's own pages, which describe the cluster's layout to whoever asks."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from posts import encode, post, unique_texts

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration


def get(settings: Settings, path: str) -> tuple[int, bytes]:
    url = f"http://{settings.web_host}:{settings.web_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_health_ready_and_metrics_only(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(batch_max=50)
    await create_topics(settings, replication_factor=1, partitions=2)
    with worker_process(settings, tmp_path / "worker.log"):
        posts = [post(f"e-{i}", t) for i, t in enumerate(unique_texts(100, seed=5))]
        await produce_posts(settings, [encode(p) for p in posts])
        await collect_outcomes(settings, len(posts), timeout_s=60)
        health, body = get(settings, "/health")
        ready, ready_body = get(settings, "/ready")
        metrics, text = get(settings, "/metrics")
        hidden = {path: get(settings, path)[0] for path in ("/router/", "/table/", "/graph/")}
    assert health == 200
    assert orjson.loads(body)["status"] == "ok"
    assert ready == 200
    assert orjson.loads(ready_body) == {"ready": True, "why": None}
    assert metrics == 200
    assert b"modfleet_posts_consumed_total 100.0" in text
    lag_lines = [line for line in text.splitlines() if line.startswith(b"modfleet_consumer_lag{")]
    assert lag_lines, "lag is reported for the partitions the worker owns"
    assert set(hidden.values()) == {404}, hidden
