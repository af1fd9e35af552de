"""A record whose header key is not UTF-8 reaches the worker like any other.

The Kafka protocol does not forbid such a key (librdkafka and raw-protocol producers send one,
Apache Kafka passes it on); aiokafka's C parser raised on it, so the records after it in the
fetch were never delivered and the same batch was fetched again and again. These tests build
the batch a broker would return (CRC recomputed) and read it as the worker's fetcher does."""

from __future__ import annotations

import struct
from typing import Any

import faust
import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition
from raw_batches import HEADER_CRC_START, batch, value

from modfleet.errors import FatalError
from modfleet.stream import lenient
from modfleet.stream.transport import use_consumer

TP = TopicPartition("posts", 0)


@pytest.fixture(scope="module", autouse=True)
def _worker_transport() -> None:
    # What a worker does at start-up: its app's transport is built before any fetch.
    use_consumer(faust.App("header-keys-test", broker="kafka://127.0.0.1:9"), 100)


def fetched(raw: bytes, fetch_offset: int = 0, **options: Any) -> Any:
    """The fetcher's own reading of one partition's fetch response."""
    return fetcher.PartitionRecords(
        TP,
        fetcher.MemoryRecords(raw),
        options.get("aborted", []),
        fetch_offset,
        None,
        None,
        True,
        options.get("isolation", 0),
    )


def header_names(record: Any) -> list[str]:
    return [name for name, _ in record.headers]


def test_a_record_with_a_header_key_that_is_not_utf8_is_delivered_with_those_after_it() -> None:
    records = fetched(batch(0, 3, {1}))
    got = list(records)
    assert [r.offset for r in got] == [0, 1, 2]
    assert [r.value for r in got] == [value(0), value(1), value(2)]
    assert header_names(got[1]) == ["a", "\ufffdQ", "traceparent"]
    assert got[1].headers[1] == ("\ufffdQ", b"v")
    assert header_names(got[2]) == ["a", "ok", "traceparent"]
    assert records.next_fetch_offset == 3  # the partition moves on


def test_every_batch_of_the_fetch_is_delivered_once_in_order() -> None:
    # Before, a clean batch, the hostile one (gzip, several hostile keys), and one after.
    raw = batch(0, 2, set()) + batch(2, 4, {3, 5}, gzip=True) + batch(6, 2, {7})
    records = fetched(raw)
    got = list(records)
    assert [r.offset for r in got] == list(range(8))
    assert [r.value for r in got] == [value(i) for i in range(8)]
    assert {i for i, r in enumerate(got) if "\ufffdQ" in header_names(r)} == {3, 5, 7}
    assert records.next_fetch_offset == 8


def test_a_fetch_from_inside_a_batch_delivers_from_the_fetch_offset_only() -> None:
    # A broker returns whole batches: a fetch at 2 reads a batch from 0, as after a commit.
    got = list(fetched(batch(0, 5, {3}), fetch_offset=2))
    assert [r.offset for r in got] == [2, 3, 4]


def test_aborted_transactions_are_still_skipped_under_read_committed() -> None:
    # The rest of the fetch is read by aiokafka's own loop, so its transaction rules hold:
    # producer 8's transaction was aborted, producer 7's (with the hostile key) committed.
    raw = batch(0, 2, {1}, producer_id=7) + batch(2, 2, set(), producer_id=8) + batch(4, 1, {4})
    got = list(fetched(raw, isolation=1, aborted=[(8, 2)]))
    assert [r.offset for r in got] == [0, 1, 4]


def test_a_clean_fetch_stays_on_aiokafkas_c_reader() -> None:
    records = fetched(batch(0, 3, set()) + batch(3, 2, set()))
    assert [r.offset for r in records] == [0, 1, 2, 3, 4]
    assert isinstance(records._records, fetcher.MemoryRecords)


def test_a_batch_that_is_corrupt_for_another_reason_still_raises() -> None:
    raw = bytearray(batch(0, 2, {1}))
    raw[-1:] = b""  # a record cut short, its CRC made good: not a header key problem
    struct.pack_into(">i", raw, 8, len(raw) - 12)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[HEADER_CRC_START:])))
    with pytest.raises(Exception, match="record"):
        list(fetched(bytes(raw)))


def test_an_aiokafka_whose_fetcher_no_longer_builds_these_fails_the_worker_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lenient, "_FETCHER_BUILDS", ("RenamedPartitionRecords",))
    with pytest.raises(FatalError, match="RenamedPartitionRecords"):
        lenient.check_aiokafka()


def test_an_aiokafka_whose_reader_changed_fails_the_worker_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As an aiokafka would whose pure-Python batch no longer reads records through _read_msg.
    monkeypatch.setattr(
        lenient.LenientBatch, "_read_msg", lenient.LenientBatch.__bases__[0]._read_msg
    )
    with pytest.raises(FatalError, match="header key"):
        lenient.check_aiokafka()
