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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from raw_batches import produce_raw, zstd_bomb
from review_messages import DIGEST_B, decision, review

from modfleet.contracts.admin import create_topics
from modfleet.emit.budget import Budget
from modfleet.kafka import client_options
from modfleet.metrics import Metrics
from modfleet.reviews.live import LiveJoin
from modfleet.settings import Settings
from modfleet.stack.dev import settings_env

pytestmark = pytest.mark.integration


async def produce(settings: Settings, topic: str, messages: list[Any]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all", max_request_size=4 * 2**20)
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
    return [orjson.loads(value or b"{}") for _, value, _ in await _dead_letter_records(settings)]


async def _dead_letter_records(
    settings: Settings,
) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(
        settings.dead_letter_topic,
        **client_options(settings),
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 2**20,
    )
    await consumer.start()
    records = []
    try:
        while batches := await consumer.getmany(timeout_ms=2000):
            records += [
                (r.key, r.value or b"", list(r.headers)) for rs in batches.values() for r in rs
            ]
    finally:
        await consumer.stop()
    return records


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
    proc = _reviews_process(settings, tmp_path / "reviews.log")
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


def _reviews_process(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """``modfleet reviews run`` as its own process, as the chart runs it, logging to a file."""
    env = {**os.environ, **settings_env(settings)}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "modfleet", "reviews", "run"], env=env, stdout=log, stderr=log
        )


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


async def test_a_review_waiting_for_its_decision_survives_a_restart_counted_once(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(reviews_topic=f"reviews-wait-{tmp_path.name[-8:]}")
    # One partition: the reviews joined after the one left waiting are read again at the restart.
    await create_topics(settings, replication_factor=1, partitions=1)
    early, late, other = (decision(f"w-{i}", "remove", ("hate",)) for i in range(3))
    overturn = review(late, "allow", {"hate": False})  # before its decision: it waits
    await produce(settings, settings.decisions_topic, [early, other])
    await produce(settings, settings.reviews_topic, [review(early, "remove", {"hate": True})])
    await produce(settings, settings.reviews_topic, [overturn, review(other, "remove")])
    first = await _live_until(settings, lambda m: _sample(m, "modfleet_reviews_total") >= 3)
    assert _sample(first, "modfleet_reviews_total", result="joined") == 2
    assert _sample(first, "modfleet_reviews_total", result="pending") == 1

    await produce(settings, settings.decisions_topic, [late])  # while the join is down
    second = await _live_until(
        settings, lambda m: _sample(m, "modfleet_reviews_total", result="joined") >= 1
    )
    # Joined as it would have been without the restart; the two joined before stay counted once.
    assert _sample(second, "modfleet_reviews_total", result="joined") == 1
    assert _sample(second, "modfleet_review_outcomes_total", outcome="overturned") == 1
    assert _sample(second, "modfleet_reviews_total") == 1, "nothing else counted again"

    await produce(settings, settings.reviews_topic, [overturn, review(early, "allow")])
    third = await _live_until(settings, lambda m: _sample(m, "modfleet_reviews_total") >= 2)
    assert _sample(third, "modfleet_reviews_total", result="duplicate") == 2
    assert _sample(third, "modfleet_review_outcomes_total") == 0


async def test_a_review_still_waiting_after_a_restart_joins_its_decision_when_it_comes(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(reviews_topic=f"reviews-later-{tmp_path.name[-8:]}")
    await create_topics(settings, replication_factor=1, partitions=2)
    known, late = decision("l-0"), decision("l-1", "remove", ("hate",))
    await produce(settings, settings.decisions_topic, [known])
    await produce(settings, settings.reviews_topic, [review(late, "allow", {"hate": False})])
    first = await _live_until(settings, lambda m: _sample(m, "modfleet_reviews_total") >= 1)
    assert _sample(first, "modfleet_reviews_total", result="pending") == 1

    metrics, stop = Metrics(), asyncio.Event()
    task = asyncio.create_task(LiveJoin(settings, metrics).run(stop))
    try:
        for _ in range(150):  # the join holds ``known`` once it has restored and runs
            await asyncio.sleep(0.2)
            if _sample(metrics, "modfleet_review_join_decisions") >= 1 or task.done():
                break
        await produce(settings, settings.decisions_topic, [late])
        for _ in range(150):
            await asyncio.sleep(0.2)
            if _sample(metrics, "modfleet_reviews_total") >= 1 or task.done():
                break
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await task
    assert _sample(metrics, "modfleet_reviews_total", result="joined") == 1
    assert _sample(metrics, "modfleet_review_outcomes_total", outcome="overturned") == 1
    assert _sample(metrics, "modfleet_reviews_total") == 1, "its pending was counted before"


def test_a_review_waiting_when_the_process_is_killed_is_joined_after_it(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(reviews_topic=f"reviews-kill-{tmp_path.name[-8:]}")
    late = decision("k-1", "remove", ("hate",))
    asyncio.run(create_topics(settings, replication_factor=1, partitions=2))
    asyncio.run(produce(settings, settings.reviews_topic, [review(late, "allow")]))
    proc = _reviews_process(settings, tmp_path / "reviews.log")
    try:
        text = _wait_for_metric(
            f"http://{settings.web_host}:{settings.web_port}/metrics",
            'modfleet_reviews_total{result="pending"} 1.0',
        )
        assert 'result="pending"} 1.0' in text, (tmp_path / "reviews.log").read_text()[-2000:]
        time.sleep(2.5)  # past a checkpoint: what a kill may lose is what came after the last
    finally:
        proc.kill()  # no orderly stop: no last checkpoint
        proc.wait(timeout=30)

    async def after() -> Metrics:
        await produce(settings, settings.decisions_topic, [late])
        return await _live_until(settings, lambda m: _sample(m, "modfleet_reviews_total") >= 1)

    metrics = asyncio.run(after())
    assert _sample(metrics, "modfleet_reviews_total", result="joined") == 1
    assert _sample(metrics, "modfleet_reviews_total") == 1


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


@pytest.mark.parametrize(
    ("limit", "size"), [(256 * 1024, 240_000), (2 * 2**20, 1_500_000)], ids=["small", "large"]
)
async def test_dead_letters_fit_the_configured_budget_and_the_join_carries_on(
    make_settings: Callable[..., Settings], tmp_path: Path, limit: int, size: int
) -> None:
    # A broker at 256 KiB refuses a dead letter built to the 1 MiB default, and a producer left
    # at aiokafka's 1 MiB refuses one built to a 2 MiB budget: either would end the process,
    # and its restart would meet the same review again.
    settings = make_settings(
        reviews_topic=f"reviews-dl-{tmp_path.name[-8:]}",
        broker_max_message_bytes=limit,
        producer_max_request_bytes=limit,
    )
    await create_topics(settings, replication_factor=1, partitions=2)
    d = decision("dl-1", "remove", ("hate",))
    await produce(settings, settings.decisions_topic, [d])
    forged = orjson.dumps(review(d, "allow", note="x" * size))
    await produce(settings, settings.reviews_topic, [forged, review(d, "allow", {"hate": False})])

    metrics = await _live_until(settings, lambda m: _sample(m, "modfleet_reviews_total") >= 2)
    assert _sample(metrics, "modfleet_reviews_total", result="invalid") == 1
    assert _sample(metrics, "modfleet_reviews_total", result="joined") == 1, "still running"
    budget = Budget.from_settings(settings)
    dead = await _dead_letter_records(settings)
    assert len(dead) == 1
    key, value, headers = dead[0]
    assert budget.fits(key, value, headers), f"{len(value):,} bytes against {limit:,}"
    assert orjson.loads(value)["reason"]["field"] == "/note"


async def test_a_decompression_bomb_on_the_reviews_topic_costs_only_its_own_offsets(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # The reviews topic takes writes from outside the fleet (review tools), and the join read
    # it with a plain consumer, which inflated a batch whole: 10 kB of zstd made 256 MiB here,
    # and a larger one ends the process at the same offset after each restart.
    settings = make_settings(reviews_topic=f"reviews-bomb-{tmp_path.name[-8:]}")
    await create_topics(settings, replication_factor=1, partitions=1)
    d = [decision(f"bomb-{i}", "remove", ("hate",)) for i in range(2)]
    await produce(settings, settings.decisions_topic, d)
    await produce(settings, settings.reviews_topic, [review(d[0], "allow", {"hate": False})])
    await produce_raw(settings, settings.reviews_topic, zstd_bomb(16, 16 * 1024 * 1024))
    await produce(settings, settings.reviews_topic, [review(d[1], "remove", {"hate": True})])

    metrics = await _live_until(settings, lambda m: _sample(m, "modfleet_reviews_total") >= 18)
    assert _sample(metrics, "modfleet_reviews_total", result="joined") == 2, "read on past it"
    assert _sample(metrics, "modfleet_reviews_total", result="invalid") == 16
    dead = await _dead_letters(settings)
    assert [x["source"]["offset"] for x in dead] == list(range(1, 17))
    assert {x["reason"]["code"] for x in dead} == {"too_large"}
    assert "inflates past max_batch_inflated_bytes" in dead[0]["reason"]["message"]
