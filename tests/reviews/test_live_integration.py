"""The live join and `modfleet reviews report` on a real broker, against an independent tally."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from review_messages import DIGEST_B, decision, review

from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.metrics import Metrics
from modfleet.reviews.live import LiveJoin
from modfleet.settings import Settings
from modfleet.stack.dev import settings_env

pytestmark = pytest.mark.integration


async def produce(settings: Settings, topic: str, messages: list[Any]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for m in messages:
            value = m if isinstance(m, bytes) else orjson.dumps(m)
            key = m["post_id"].encode() if isinstance(m, dict) else b"junk"
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def scenario() -> tuple[list[dict[str, Any]], list[Any], dict[str, int]]:
    """40 decisions, 12 reviewed (4 overturned), plus hostile reviews; the expected counts."""
    decisions, reviews = [], []
    for i in range(40):
        action = ("allow", "remove", "escalate", "label")[i % 4]
        labels = () if action == "allow" else ("hate",)
        digest = DIGEST_B if i % 2 else "a" * 64
        decisions.append(decision(f"p{i}", action, labels, digest=digest, stage="llm"))
    for i in range(0, 36, 3):  # 12 reviews
        d = decisions[i]
        overturn = i % 9 == 0  # i = 0, 9, 18, 27
        if d["action"] == "escalate":
            action = "allow" if overturn else "remove"
        else:
            action = ("remove" if d["action"] == "allow" else "allow") if overturn else d["action"]
        reviews.append(review(d, action, {"hate": action != "allow"}))
    reviews += [
        review(decisions[3], "allow", tenant="globex"),  # wrong tenant
        review(decision("ghost"), "allow"),  # unknown decision
        review(decisions[0], "allow"),  # a second review
        review(decisions[0], "allow", note="x" * 100_000),  # huge note: invalid
        b"not json at all",
    ]
    expected = {"joined": 12, "mismatch": 1, "unknown": 1, "duplicate": 1, "invalid": 2}
    return decisions, reviews, expected


async def test_live_join_and_report_count_what_an_independent_tally_counts(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    run = tmp_path.name[-8:]
    settings = make_settings(reviews_topic=f"reviews-{run}")
    await create_topics(settings, replication_factor=1, partitions=2)
    decisions, reviews, expected = scenario()
    await produce(settings, settings.decisions_topic, decisions)
    await produce(settings, settings.reviews_topic, reviews)

    metrics = await _live_until(
        settings, lambda m: _sample(m, "modfleet_reviews_total") >= len(reviews)
    )
    by_result = {r: _sample(metrics, "modfleet_reviews_total", result=r) for r in expected}
    # The unknown one waits for its decision until it ages out; the live join has not seen that.
    assert by_result | {"unknown": 1} == expected
    assert _sample(metrics, "modfleet_reviews_total", result="pending") == 1
    assert by_result["unknown"] == 0
    upheld = _sample(metrics, "modfleet_review_outcomes_total", outcome="upheld")
    overturned = _sample(metrics, "modfleet_review_outcomes_total", outcome="overturned")
    assert (upheld, overturned) == (8, 4)
    action_of = {d["decision_id"]: d["action"] for d in decisions}
    reviewed_removals = sum(action_of[r["decision_id"]] == "remove" for r in reviews[:12])
    removals = _sample(metrics, "modfleet_review_outcomes_total", action="remove")
    assert removals == reviewed_removals == 3
    report = _report_cli(settings, tmp_path / "report.json")
    assert {k: report["results"][k] for k in expected} == expected
    assert report["overall"]["reviewed"] == 12
    assert report["overall"]["overturned"] == 4
    dead = await _dead_letters(settings)
    assert {d["reason"]["code"] for d in dead} == {"schema_invalid", "not_json"}


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    total = 0.0
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _report_cli(settings: Settings, out: Path) -> dict[str, Any]:
    env = {**os.environ, **settings_env(settings)}
    cmd = [sys.executable, "-m", "modfleet", "reviews", "report", "--idle", "2", "--json", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert "removal precision" in done.stdout
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


async def _dead_letters(settings: Settings) -> list[dict[str, Any]]:
    from modfleet.reviews.read import Window, read_topic

    return [
        orjson.loads(r.value or b"{}")
        async for r in read_topic(settings, settings.dead_letter_topic, Window(), idle_s=2)
    ]


def test_the_reviews_process_serves_metrics_and_stops_on_sigterm(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(reviews_topic=f"reviews-cli-{tmp_path.name[-8:]}")
    d = decision("cli-1", "remove", ("hate",))

    async def setup() -> None:
        await create_topics(settings, replication_factor=1, partitions=2)
        await produce(settings, settings.decisions_topic, [d])
        await produce(settings, settings.reviews_topic, [review(d, "allow", {"hate": False})])

    asyncio.run(setup())
    env = {**os.environ, **settings_env(settings)}
    with (tmp_path / "reviews.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modfleet", "reviews", "run"], env=env, stdout=log, stderr=log
        )
    try:
        text = _wait_for_metric(
            f"http://{settings.web_host}:{settings.web_port}/metrics",
            'modfleet_review_outcomes_total{action="remove",outcome="overturned"',
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert 'modfleet_reviews_total{result="joined"} 1.0' in text, text[-2000:]
    assert 'modfleet_review_verdicts_total{category="hate",flagged="true",violates="false"}' in text
    assert code == 0, (tmp_path / "reviews.log").read_text()[-2000:]


def _wait_for_metric(url: str, wanted: str, timeout_s: float = 30) -> str:
    text = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                text = response.read().decode()
        except OSError:
            continue
        if wanted in text:
            break
    return text


async def test_a_restart_neither_recounts_old_reviews_nor_counts_a_second_review_again(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(reviews_topic=f"reviews-restart-{tmp_path.name[-8:]}")
    await create_topics(settings, replication_factor=1, partitions=2)
    d = decision("restart-1", "remove", ("hate",))
    await produce(settings, settings.decisions_topic, [d])
    await produce(settings, settings.reviews_topic, [review(d, "remove", {"hate": True})])
    first = await _live_until(settings, lambda m: _sample(m, "modfleet_reviews_total") >= 1)
    assert _sample(first, "modfleet_reviews_total", result="joined") == 1

    await produce(settings, settings.reviews_topic, [review(d, "allow", {"hate": False})])
    second = await _live_until(settings, lambda m: _sample(m, "modfleet_reviews_total") >= 1)
    assert _sample(second, "modfleet_reviews_total", result="duplicate") == 1
    assert _sample(second, "modfleet_reviews_total", result="joined") == 0, "counted once"
    assert _sample(second, "modfleet_review_outcomes_total") == 0


async def _live_until(settings: Settings, done: Callable[[Metrics], bool]) -> Metrics:
    metrics = Metrics()
    stop = asyncio.Event()
    task = asyncio.create_task(LiveJoin(settings, metrics).run(stop))
    try:
        for _ in range(150):
            await asyncio.sleep(0.2)
            if done(metrics) or task.done():
                break
        await asyncio.sleep(0.5)  # anything counted late would show now
    finally:
        stop.set()
        await task
    return metrics
