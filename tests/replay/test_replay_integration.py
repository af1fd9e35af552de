"""`modfleet replay` against a real broker, Redis and worker process."""

from __future__ import annotations

import csv
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from click.testing import CliRunner
from posts import encode, post, unique_texts
from raw_batches import produce_raw, zstd_bomb

from modfleet.cli import main
from modfleet.kafka import client_options
from modfleet.replay.report import Report
from modfleet.replay.rows import FieldMap
from modfleet.replay.runner import FileSpec, ReplayOptions, TopicSpec, run_replay
from modfleet.replay.topic_source import Offsets
from modfleet.settings import Settings
from modfleet.stack.dev import settings_env

pytestmark = pytest.mark.integration


def tag() -> str:
    return uuid.uuid4().hex[:6]


def captured(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def read_topic(settings: Settings, topic: str, idle_s: float = 1.5) -> list[Any]:
    """Every record of a topic. Read until idle: the test broker reports end offsets low."""
    consumer = AIOKafkaConsumer(
        topic, **client_options(settings), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < idle_s:
            batches = await consumer.getmany(timeout_ms=300)
            for batch in batches.values():
                records.extend(batch)
                idle_since = time.monotonic()
    finally:
        await consumer.stop()
    return records


async def new_topic(settings: Settings, name: str) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    await admin.create_topics([NewTopic(name, 1, 1)])
    await admin.close()


async def send_each(settings: Settings, topic: str, values: list[bytes]) -> None:
    """One record batch a value, as a platform sending posts one at a time writes them."""
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    for value in values:
        await producer.send_and_wait(topic, value)
    await producer.stop()


async def replay(settings: Settings, source: FileSpec | TopicSpec, **kw: Any) -> Report:
    options = ReplayOptions(source, progress=False, timeout_s=60, **kw)
    return await run_replay(settings, options)


async def test_jsonl_rows_in_equal_posts_out_and_every_post_is_decided(
    fleet: Settings, tmp_path: Path
) -> None:
    t = tag()
    valid = [post(f"j{t}-{i}", text) for i, text in enumerate(unique_texts(120, seed=3))]
    lines = [encode(p) for p in valid]
    # Bad rows at known lines (1-based, after insertion), and a blank line, which is no row.
    lines.insert(4, b"{not json")  # line 5
    lines.insert(9, b'{"post_id": "no-text"}')  # line 10: mapped, but has no text
    lines.insert(14, b"[1, 2]")  # line 15
    lines.insert(19, b"")  # line 20
    # A post.v1 the worker rejects: passed through unchanged, so it must be dead-lettered.
    lines.append(encode(post(f"j{t}-bad-tenant", "hello", tenant="not ok!")))
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    capture = tmp_path / "decisions.jsonl"

    report = await replay(fleet, FileSpec(path), capture=capture)

    assert [(b.where, b.code) for b in report.bad_rows] == [
        ("line 5", "invalid_json"),
        ("line 10", "missing_field"),
        ("line 15", "not_an_object"),
    ]
    assert report.rows == len(lines) - 1  # the blank line is not a row
    assert report.sent == report.rows - 3 == len(valid) + 1
    produced = [
        r for r in await read_topic(fleet, fleet.posts_topic) if r.key.startswith(f"j{t}".encode())
    ]
    assert len(produced) == report.sent, "rows in == posts produced"
    assert all(("content-type", b"application/json") in r.headers for r in produced)

    assert report.complete
    assert report.dead_letters == {"schema_invalid": 1}
    decisions = captured(capture)
    assert sorted(d["post_id"] for d in decisions) == sorted(p["post_id"] for p in valid)
    assert all(d["tenant"] == "acme" for d in decisions)
    assert report.decisions == len(valid) == sum(report.actions.values())
    assert report.latency is not None
    assert report.latency.count == len(valid)
    assert 0 <= report.latency.p50 <= report.latency.p95 <= report.latency.p99
    assert "latency (post produced -> decided, n=120)" in report.render()


async def test_a_second_replay_counts_only_its_own_outcomes(
    fleet: Settings, tmp_path: Path
) -> None:
    t = tag()
    path = tmp_path / "posts.jsonl"
    path.write_bytes(
        b"".join(encode(post(f"r{t}-{i}", f"repeat me {t} {i}")) + b"\n" for i in range(40))
    )

    first = await replay(fleet, FileSpec(path))
    second = await replay(fleet, FileSpec(path))

    # The first replay's decisions for the same post ids are still on the topic: not counted.
    assert first.decisions == second.decisions == 40
    assert second.duplicates == 0
    assert second.cache_hits == 40, "the same texts again: every verdict from Redis"


async def test_csv_columns_are_mapped_and_bad_rows_located(fleet: Settings, tmp_path: Path) -> None:
    t = tag()
    path = tmp_path / "posts.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "body", "who", "platform"])  # line 1
        w.writerow([f"c{t}-1", "hello there", "u1", "acme"])  # line 2
        w.writerow([f"c{t}-2", "a post\nover two lines", "u2", "acme"])  # lines 3-4
        w.writerow([f"c{t}-3", "", "u3", "acme"])  # line 5: no text
        w.writerow([f"c{t}-4", "fine", "u4", ""])  # line 6: default tenant
        w.writerow([f"c{t}-5", "too", "many", "cells", "here"])  # line 7
    fields = FieldMap(
        id_field="id", text_field="body", tenant_field="platform", tenant="csv", author_field="who"
    )
    capture = tmp_path / "decisions.jsonl"

    report = await replay(fleet, FileSpec(path), fields=fields, capture=capture)

    assert [(b.where, b.code) for b in report.bad_rows] == [
        ("line 5", "missing_field"),
        ("line 7", "invalid_row"),
    ]
    assert report.sent == 3
    assert report.complete
    tenants = {d["post_id"]: d["tenant"] for d in captured(capture)}
    assert tenants == {f"c{t}-1": "acme", f"c{t}-2": "acme", f"c{t}-4": "csv"}


async def test_parquet_rows_are_numbered(fleet: Settings, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    t = tag()
    table = pa.table(
        {
            "post_id": [f"q{t}-{i}" for i in range(5)],
            "text": ["one", "two", None, "four", "five"],
            "created_at": pa.array([1_700_000_000_000] * 5, pa.timestamp("ms")),
        }
    )
    path = tmp_path / "posts.parquet"
    pq.write_table(table, path)

    report = await replay(fleet, FileSpec(path))

    assert [(b.where, b.code) for b in report.bad_rows] == [("row 3", "missing_field")]
    assert report.sent == report.decisions == 4
    assert report.dead_letters == {}, "the timestamp column became a valid created_at"


async def test_replays_an_offset_range_of_another_topic(fleet: Settings) -> None:
    t = tag()
    source = f"source-{t}"
    await new_topic(fleet, source)
    values = [encode(post(f"o{t}-{i}", f"from a topic {i}")) for i in range(30)]
    values[15] = b"not json"
    await send_each(fleet, source, values)

    spec = TopicSpec(source, Offsets.parse(["10"]), Offsets.parse(["0:20"]))
    report = await replay(fleet, spec)

    assert [(b.where, b.code) for b in report.bad_rows] == [(f"{source}[0]@15", "invalid_json")]
    assert report.rows == 10
    assert report.sent == 9
    assert report.decisions == 9
    assert report.complete


async def test_a_decompression_bomb_in_the_source_topic_is_a_bad_row_per_offset(
    fleet: Settings,
) -> None:
    # Replaying a posts topic meets what the worker meets: a batch that inflates past the bound
    # is not read (it was inflated whole, 256 MiB here), and each of its offsets is reported.
    t = tag()
    source = f"bomb-source-{t}"
    await new_topic(fleet, source)
    await send_each(fleet, source, [encode(post(f"b{t}-{i}", f"before {i}")) for i in range(2)])
    await produce_raw(fleet, source, zstd_bomb(16, 16 * 1024 * 1024))
    await send_each(fleet, source, [encode(post(f"b{t}-{i}", f"after {i}")) for i in (2, 3)])

    report = await replay(fleet, TopicSpec(source, Offsets.parse([]), Offsets.parse([])))

    assert [b.where for b in report.bad_rows] == [f"{source}[0]@{o}" for o in range(2, 18)]
    assert {b.code for b in report.bad_rows} == {"too_large"}
    assert "inflates past max_batch_inflated_bytes" in report.bad_rows[0].message
    assert report.sent == report.decisions == 4
    assert report.complete


async def test_posts_nobody_decides_are_reported_after_the_timeout(
    fleet: Settings, tmp_path: Path
) -> None:
    t = tag()
    orphan = fleet.model_copy(update={"posts_topic": f"unconsumed-{t}"})
    await new_topic(fleet, orphan.posts_topic)
    path = tmp_path / "posts.jsonl"
    path.write_bytes(encode(post(f"n{t}-1", "is anyone there")) + b"\n")

    report = await run_replay(orphan, ReplayOptions(FileSpec(path), timeout_s=1, progress=False))

    assert not report.complete
    assert report.unsettled == 1
    assert report.waiting == [f"n{t}-1"]
    assert "(1 without an outcome)" in report.render()


def test_the_command_paces_captures_and_reports(fleet: Settings, tmp_path: Path) -> None:
    t = tag()
    path = tmp_path / "posts.jsonl"
    texts = unique_texts(600, seed=11)
    path.write_bytes(b"".join(encode(post(f"k{t}-{i}", x)) + b"\n" for i, x in enumerate(texts)))
    capture = tmp_path / "decisions.jsonl"

    args = ["replay", str(path), "--rate", "600/s", "--capture", str(capture), "--no-progress"]
    result = CliRunner().invoke(main, args, env=settings_env(fleet))

    assert result.exit_code == 0, result.output
    assert len(captured(capture)) == 600
    rate_line = next(line for line in result.output.splitlines() if "send rate" in line)
    rate = float(rate_line.split()[2].replace(",", ""))
    assert 540 <= rate <= 660, rate_line
    assert "settled             600 of 600" in result.output


async def test_a_replay_reads_no_further_than_the_topic_went_when_it_started(
    fleet: Settings,
) -> None:
    # Replaying a topic into itself (dead letters that are dead-lettered again, posts onto the
    # posts topic) with an end past the data: what the replay writes must not be replayed.
    t = tag()
    looped = fleet.model_copy(update={"posts_topic": f"looped-{t}"})
    await new_topic(fleet, looped.posts_topic)
    await send_each(
        fleet, looped.posts_topic, [encode(post(f"l{t}-{i}", "again")) for i in range(10)]
    )

    spec = TopicSpec(looped.posts_topic, Offsets(), Offsets.parse(["1000"]))
    report = await run_replay(looped, ReplayOptions(spec, timeout_s=1, progress=False))

    assert report.rows == 10
    assert report.sent == 10
    assert report.notes == ["partition 0: ends at 10, before the end 1000 asked for"]
    assert len(await read_topic(fleet, looped.posts_topic)) == 20
