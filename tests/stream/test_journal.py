"""The crash journal on a real file: what one run leaves, the next learns; nothing a file or a
post holds stops a worker from starting, and the file stays small whatever happens."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modfleet.ingest import Record
from modfleet.stream.journal import (
    MAX_CULPRITS,
    MAX_SUSPECTS,
    CrashJournal,
    Culprit,
    Learned,
    Span,
    spans_of,
)


def records(first: int, last: int, *, partition: int = 0, topic: str = "posts") -> list[Record]:
    return [
        Record(topic, partition, o, 1.7e9, None, f"post {o}".encode())
        for o in range(first, last + 1)
    ]


def died(path: Path, *batches: list[Record], alone: Sequence[Record] = ()) -> None:
    """A worker's run in a process of its own that takes ``batches`` in hand, reads ``alone``
    a post at a time, and dies on the last of them (or, with none, holding the batches): as in
    a native crash, nothing after that runs, not even a ``finally``."""
    pid = os.fork()
    if pid == 0:
        try:
            journal = CrashJournal(path)
            for batch in batches:
                journal.begin(batch)
            for record in alone[:-1]:
                with journal.alone(record):
                    pass
            if alone:
                with journal.alone(alone[-1]):
                    os._exit(0)
        finally:
            os._exit(0 if not sys.exc_info()[0] else 1)
    _, status = os.waitpid(pid, 0)
    assert status == 0, "the run went as planned until its death"


def test_a_batch_in_hand_at_a_death_is_suspect_at_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    died(path, records(10, 19))
    journal = CrashJournal(path)
    assert journal.suspected(records(15, 15))
    assert journal.suspected(records(5, 10))
    assert not journal.suspected(records(0, 9))
    assert not journal.suspected(records(20, 30))
    assert not journal.suspected(records(10, 19, partition=1))
    assert not journal.suspected(records(10, 19, topic="other"))
    assert journal.culprits == [], "no post was read alone"


def test_a_post_read_alone_at_a_death_is_the_culprit_and_only_those_bytes(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    batch = records(0, 9)
    died(path, batch)  # the first death: the batch read whole
    assert CrashJournal(path).suspected(batch)
    died(path, batch, alone=batch[:5])  # the second: posts 0-3 read alone, then 4
    after = CrashJournal(path)
    assert after.culprit(batch[4])
    assert not after.culprit(batch[3])
    assert after.suspected(batch), "its neighbours are still read a post at a time"
    other_bytes = Record("posts", 0, 4, 1.7e9, None, b"another post, same offset")
    assert not after.culprit(other_bytes), "a recreated topic's post at the same offset"


def test_a_death_with_two_batches_in_hand_names_no_culprit(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    # Read alone with another batch in flight: the death may be the other batch's doing.
    died(path, records(0, 4), records(5, 9), alone=records(2, 2))
    after = CrashJournal(path)
    assert after.culprits == []
    assert after.suspected(records(0, 0))
    assert after.suspected(records(9, 9))


def test_an_acked_batch_settles_its_offsets_and_keeps_the_rest_suspect(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    died(path, records(0, 99))
    journal = CrashJournal(path)
    mark = journal.begin(records(0, 39))  # redelivered in a smaller batch
    journal.done(mark)
    assert not journal.suspected(records(0, 39))
    assert journal.suspected(records(40, 40))
    assert journal.suspected(records(99, 99))
    assert CrashJournal(path).suspects == [Span("posts", 0, 40, 99)], "and so says the file"


def test_a_clean_run_leaves_nothing_suspect(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal = CrashJournal(path)
    for first in range(0, 1000, 100):
        batch = records(first, first + 99)
        journal.done(journal.begin(batch))
    again = CrashJournal(path)
    assert again.suspects == []
    assert again.culprits == []
    assert not again.suspected(records(0, 999))


def test_the_file_stays_small_however_many_deaths(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    batches = [records(d * 10, d * 10 + 9, partition=d % 7) for d in range(MAX_SUSPECTS + 40)]
    for batch in batches:
        died(path, batch, alone=batch[:1])
    journal = CrashJournal(path)
    assert len(journal.suspects) == MAX_SUSPECTS
    assert len(journal.culprits) == MAX_CULPRITS
    assert journal.suspected(batches[-1]), "the latest are kept"
    assert not journal.suspected(batches[0]), "the oldest are forgotten"
    assert path.stat().st_size < 64 * 1024


@pytest.mark.parametrize(
    "left",
    [
        b"{",
        b"\xff\xfe garbage",
        b"[]",
        b'{"version": 2}',
        b'{"version": 1, "in_hand": "all", "alone": null, "suspects": [], "culprits": []}',
        b'{"version": 1, "in_hand": [], "alone": null, "suspects": [[1, 2, 3, 4]], "culprits": []}',
        b'{"version": 1, "in_hand": [], "alone": ["t", 0, 1], "suspects": [], "culprits": []}',
        b'{"version": 1, "in_hand": [[["t", 0, 1e999, 2]]], "alone": null, "suspects": [], '
        b'"culprits": []}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_an_unreadable_journal_is_named_and_the_worker_starts_afresh(
    tmp_path: Path, left: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal"
    path.write_bytes(left)
    with caplog.at_level(logging.ERROR):
        journal = CrashJournal(path)
    assert f"the crash journal {path} is unreadable" in caplog.text
    assert journal.suspects == []
    assert journal.culprits == []
    journal.done(journal.begin(records(0, 9)))  # and it works from then on
    assert orjson.loads(path.read_bytes())["in_hand"] == []


@pytest.mark.parametrize(
    ("where", "why"),
    [("folder", "cannot be opened"), ("/dev/full", "cannot be written")],
    ids=["a-folder", "a-full-disk"],
)
def test_a_journal_that_cannot_be_kept_leaves_the_worker_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str, why: str
) -> None:
    path = tmp_path if where == "folder" else Path(where)
    if not path.exists():
        pytest.skip(f"{where} is not on this system")
    with caplog.at_level(logging.ERROR):
        journal = CrashJournal(path)
        mark = journal.begin(records(0, 9))
        with journal.alone(records(3, 3)[0]):
            pass
        journal.done(mark)
    assert f"the crash journal {path} {why}" in caplog.text
    assert caplog.text.count(why) == 1, "said once"
    assert not journal.suspected(records(0, 9))


def test_without_a_path_nothing_is_kept_and_nothing_is_suspect() -> None:
    journal = CrashJournal(None)
    journal.begin(records(0, 9))
    assert not journal.suspected(records(0, 9))
    assert not journal.culprit(records(0, 0)[0])


def test_a_batch_over_several_partitions_is_a_span_each() -> None:
    batch = records(5, 7, partition=2) + records(40, 41) + records(3, 3, partition=2)
    assert sorted(spans_of(batch), key=lambda s: s.partition) == [
        Span("posts", 0, 40, 41),
        Span("posts", 2, 3, 7),
    ]


offsets = st.integers(min_value=0, max_value=60)


@given(offsets, offsets, offsets, offsets)
def test_settling_a_span_leaves_exactly_the_offsets_it_did_not_cover(
    a: int, b: int, c: int, d: int
) -> None:
    suspect = Span("posts", 0, min(a, b), max(a, b))
    done = Span("posts", 0, min(c, d), max(c, d))
    rest = suspect.without(done)
    left = {o for s in rest for o in range(s.first, s.last + 1)}
    assert left == set(range(suspect.first, suspect.last + 1)) - set(
        range(done.first, done.last + 1)
    )
    assert all(s.first <= s.last for s in rest)


@given(
    st.lists(st.tuples(st.integers(0, 2), offsets, offsets), max_size=6),
    st.lists(st.tuples(st.integers(0, 2), offsets, st.integers(0, 20)), min_size=1, max_size=3),
)
def test_a_batch_is_suspect_exactly_when_it_holds_a_suspect_offset(
    suspects: list[tuple[int, int, int]], runs: list[tuple[int, int, int]]
) -> None:
    journal = CrashJournal(None)
    journal.suspects = [Span("posts", p, min(a, b), max(a, b)) for p, a, b in suspects]
    # As Kafka hands them over: a run of offsets a partition.
    batch = [
        r
        for p, first, n in dict((p, (p, f, n)) for p, f, n in runs).values()
        for r in records(first, first + n, partition=p)
    ]
    held = any(
        s.partition == r.partition and s.first <= r.offset <= s.last
        for r in batch
        for s in journal.suspects
    )
    assert journal.suspected(batch) == held


def test_a_stop_by_choice_while_a_post_is_read_alone_blames_no_post(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    batch = records(0, 9)
    died(path, batch)
    journal = CrashJournal(path)
    journal.begin(batch)
    with journal.alone(batch[2]):
        journal.stopping()  # SIGTERM; then the shutdown grace runs out mid-read (os._exit)
        after = CrashJournal(path)
    assert after.culprits == []
    assert after.suspected(batch), "the batch is still read a post at a time"


def test_a_start_after_a_death_says_what_it_learned_and_a_clean_start_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal"
    assert not CrashJournal(path).learned
    batch = records(0, 9)
    died(path, batch)
    assert CrashJournal(path).learned == Learned(spans_of(batch), ())
    died(path, batch, alone=batch[:3])
    assert CrashJournal(path).learned == Learned(spans_of(batch), (Culprit.of(batch[2]),))
    assert not CrashJournal(path).learned, "a start that found no death learned nothing"


def test_what_other_workers_learned_counts_as_this_ones_own(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    batch = records(0, 9)
    journal = CrashJournal(path)
    journal.merge(Learned(spans_of(batch), (Culprit.of(batch[4]),)))
    journal.merge(Learned(spans_of(batch), (Culprit.of(batch[4]),)))  # told twice
    assert journal.suspects == list(spans_of(batch))
    assert journal.culprit(batch[4])
    assert not journal.culprit(batch[5])
    again = CrashJournal(path)  # and a restart still knows it
    assert again.suspected(batch)
    assert again.culprit(batch[4])
