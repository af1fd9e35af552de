"""Matching outcomes to sent posts, the report's numbers, pacing and the command's usage."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from modfleet.cli import main
from modfleet.emit.dead_letter import dead_letter_message
from modfleet.ingest.decode import Record, Rejection, decode
from modfleet.replay.io import Outcomes, _add, post_key
from modfleet.replay.pacing import Pacer
from modfleet.replay.progress import Progress
from modfleet.replay.report import Latency, SendStats, build_report, percentile
from modfleet.replay.tracker import Tracker, epoch_ms

POSTS = "posts"
T0 = 1_700_000_000_000  # ms
ISO_T0 = "2023-11-14T22:13:20.000Z"


def decision(post_id: str, produced: str = ISO_T0, decided_ms: int = 120, **extra: Any) -> bytes:
    decided = f"2023-11-14T22:13:20.{decided_ms:03d}Z"
    body = {
        "post_id": post_id,
        "post_produced_at": produced,
        "decided_at": decided,
        "action": "allow",
        "labels": [],
        "from_cache": False,
        "decision_id": f"d-{post_id}",
        **extra,
    }
    return orjson.dumps(body)


def dead_letter(key: bytes | None, timestamp: str = ISO_T0, topic: str = POSTS) -> bytes:
    source = {
        "topic": topic,
        "timestamp": timestamp,
        "key_b64": None if key is None else base64.b64encode(key).decode(),
    }
    return orjson.dumps({"reason": {"code": "schema_invalid"}, "source": source})


def test_rfc3339_to_epoch_ms() -> None:
    assert epoch_ms(ISO_T0) == T0
    assert epoch_ms("not a time") is None
    assert epoch_ms(None) is None


def test_only_outcomes_of_the_posts_sent_are_counted_each_once() -> None:
    capture = io.BytesIO()
    tracker = Tracker(POSTS, capture)
    tracker.expect((b"a", T0))
    tracker.expect((None, T0))  # a post without a usable id: dead-lettered by key and time
    tracker.sending_done()

    tracker.add("decisions", decision("a", produced="2023-11-14T22:13:19.000Z"))  # earlier replay
    tracker.add("decisions", decision("other"))
    tracker.add("dead_letters", dead_letter(None, topic="elsewhere"))
    tracker.add("decisions", b"not json")
    assert tracker.unsettled == 2
    assert not tracker.all_settled.is_set()

    tracker.add("decisions", decision("a", labels=["hate"], action="remove"))
    tracker.add("decisions", decision("a"))  # redelivered
    tracker.add("escalations", decision("a"))
    tracker.add("escalations", decision("a"))
    tracker.add("dead_letters", dead_letter(None))

    assert tracker.all_settled.is_set()
    assert tracker.unsettled == 0
    assert tracker.duplicates == 1
    assert len(tracker.outcomes.escalations) == 1
    assert tracker.latencies_ms == [120]
    assert [orjson.loads(line)["post_id"] for line in capture.getvalue().splitlines()] == ["a"]


def test_the_report_counts_actions_labels_cache_hits_and_reasons() -> None:
    tracker = Tracker(POSTS)
    for i in range(4):
        tracker.expect((f"p{i}".encode(), T0))
    tracker.expect((b"bad", T0))
    tracker.sending_done()
    tracker.add("decisions", decision("p0", action="remove", labels=["hate", "harassment"]))
    tracker.add("decisions", decision("p1", decided_ms=300, from_cache=True))
    tracker.add("decisions", decision("p2", decided_ms=900, labels=["hate"]))
    tracker.add("dead_letters", dead_letter(b"bad"))
    stats = SendStats(rows=6, sent=5, started_at=0.0, finished_at=2.5)

    report = build_report("f.jsonl", stats, tracker, 2.0, Path("cap.jsonl"))

    assert report.actions == {"remove": 1, "allow": 2}
    assert report.labels == {"hate": 2, "harassment": 1}
    assert (report.decisions, report.cache_hits) == (3, 1)
    assert report.dead_letters == {"schema_invalid": 1}
    assert report.achieved_rate == 2.0
    assert report.latency == Latency(3, 300, 900, 900, 900)
    assert report.unsettled == 1
    assert report.waiting == ["p3"]
    assert not report.complete
    text = report.render()
    for expected in ("(1 without an outcome)", "cache hits          1 (33.3% of decisions)",
                     "p50 300 ms", "requested 2/s", "still waiting for   p3"):  # fmt: skip
        assert expected in text


def test_percentiles_are_observed_values() -> None:
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([7], 99) == 7


async def test_the_pacer_holds_the_requested_rate() -> None:
    pacer = Pacer(500.0)
    started = time.monotonic()
    for _ in range(250):
        await pacer.acquire()
    elapsed = time.monotonic() - started
    # 249 intervals of 2 ms after the first token; the upper bound only guards against stalls.
    assert 0.45 <= elapsed <= 0.8, elapsed


async def test_no_rate_means_no_wait() -> None:
    pacer = Pacer(None)
    started = time.monotonic()
    for _ in range(10_000):
        await pacer.acquire()
    assert time.monotonic() - started < 0.5


def test_the_progress_line_shows_sent_decided_rate_and_eta() -> None:
    tracker = Tracker(POSTS)
    for i in range(4):
        tracker.expect((f"p{i}".encode(), T0))
    tracker.add("decisions", decision("p0"))
    stats = SendStats(rows=5, sent=4, started_at=time.monotonic() - 2)
    stats.bad = []
    line = Progress(stats, tracker, total=10, stream=io.StringIO()).line()
    assert "sent 4/10  decided 1  2/s  ETA " in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either SOURCE or --from-topic"),
        (["--from-topic", "t", "SOURCE"], "give either SOURCE or --from-topic"),
        (["SOURCE", "--start-offset", "3"], "need --from-topic"),
        (["--from-topic", "t", "--embedded"], "starts empty"),
        (["SOURCE", "--rate", "fast"], "is not a rate"),
        (["SOURCE", "--rate", "0/s"], "must be positive"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    source = tmp_path / "p.jsonl"
    source.write_text("")
    argv = ["replay", *(str(source) if a == "SOURCE" else a for a in args)]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2
    assert message in result.output


def test_help_is_the_replay_commands() -> None:
    result = CliRunner().invoke(main, ["replay", "--help"])
    assert result.exit_code == 0
    assert "--capture" in result.output
    assert "--from-topic" in result.output


def _record(body: dict[str, Any]) -> Any:
    return type("Record", (), {"value": orjson.dumps(body), "headers": ()})()


def test_an_escalated_post_is_settled_only_once_its_escalation_is_read() -> None:
    # The escalation is on its own topic and can arrive after the decision (or before it).
    outcomes = Outcomes()
    _add(outcomes, "decisions", _record({"post_id": "a", "action": "allow"}))
    _add(outcomes, "decisions", _record({"post_id": "e", "action": "escalate"}))
    assert outcomes.settled == 1
    _add(outcomes, "escalations", _record({"post_id": "e"}))
    assert outcomes.settled == 2
    _add(outcomes, "escalations", _record({"post_id": "f"}))
    _add(outcomes, "decisions", _record({"post_id": "f", "action": "escalate"}))
    assert outcomes.settled == 3
    # A refused escalation's stand-in dead-letter settles its post as well.
    _add(outcomes, "decisions", _record({"post_id": "g", "action": "escalate"}))
    dead = {"post_id": "g", "source": {"topic": "posts", "partition": 0, "offset": 7}}
    _add(outcomes, "dead_letters", _record(dead))
    assert outcomes.settled == 4


@pytest.mark.parametrize("rate", ["nan", "nan/s", "inf", "-inf/s"])
def test_a_rate_that_is_not_a_finite_number_is_refused(tmp_path: Path, rate: str) -> None:
    source = tmp_path / "p.jsonl"
    source.write_text("")
    result = CliRunner().invoke(main, ["replay", str(source), "--rate", rate])
    assert result.exit_code == 2, result.output
    assert "must be positive and finite" in result.output


def test_a_bad_parquet_file_is_a_one_line_error_not_a_traceback(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    source = tmp_path / "bad.parquet"
    source.write_bytes(b"PAR1garbagegarbagePAR1")
    result = CliRunner().invoke(main, ["replay", str(source)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert f"modfleet: {source}: not a readable Parquet file" in result.output


def test_a_dead_letter_of_a_post_with_an_over_long_key_settles_that_post() -> None:
    # A 2,000-character post id: the worker dead-letters the post, and the dead letter's
    # source.key_b64 holds only the key's first 1,024 bytes (key_truncated).
    value = orjson.dumps({"schema_version": 1, "post_id": "p" * 2000, "tenant": "a", "text": "x"})
    key = (post_key(value), T0)
    tracker = Tracker(POSTS)
    tracker.expect(key)
    tracker.expect((b"q" * 2000, T0))  # another long key: not settled by the first's letter
    tracker.sending_done()
    record = Record(POSTS, 0, 42, T0 / 1000, key[0], value)
    why = decode(record)
    assert isinstance(why, Rejection)
    letter = dead_letter_message(record, why, "dead-letter")
    assert orjson.loads(letter.value)["source"]["key_truncated"] is True

    tracker.add("dead_letters", letter.value)
    assert len(tracker.outcomes.dead_letters) == 1
    assert tracker.unsettled == 1
    assert tracker.waiting() == ["q" * 2000]
    tracker.add("dead_letters", letter.value)  # redelivered: counted once
    assert tracker.duplicates == 1
    assert len(tracker.outcomes.dead_letters) == 1


def test_posts_of_two_tenants_with_the_same_post_id_are_settled_each() -> None:
    # Post ids are unique only within a tenant: `modfleet dev --posts` waits for both.
    outcomes = Outcomes()
    for tenant in ("acme", "globex"):
        _add(outcomes, "decisions", _record({"post_id": "p1", "tenant": tenant, "action": "allow"}))
    _add(outcomes, "decisions", _record({"post_id": "p1", "tenant": "acme", "action": "allow"}))
    assert outcomes.settled == 2
    _add(outcomes, "decisions", _record({"post_id": "p2", "tenant": "a", "action": "escalate"}))
    _add(outcomes, "escalations", _record({"post_id": "p2", "tenant": "b"}))
    assert outcomes.settled == 2  # another tenant's escalation settles nothing of tenant a
    _add(outcomes, "escalations", _record({"post_id": "p2", "tenant": "a"}))
    assert outcomes.settled == 3
