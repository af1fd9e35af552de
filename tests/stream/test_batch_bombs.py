"""A compressed batch that inflates past the bound costs its own offsets, nothing more.

The broker bounds a batch as sent, compressed; 1 MiB of zstd holds gigabytes. aiokafka inflated
a batch whole before reading a record of it, so one producer's batch could have every worker
given its partition killed for memory, in turn. These tests read hand-built fetches (bombs of
64 MiB of zeros, a bound of 4 MiB) as the worker's fetcher does: each offset of the bomb comes
out as a record the decoder rejects as too_large, every other record as before, and the
memory used follows the bound, not the bomb."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cramjam
import faust
import orjson
import pytest
from aiokafka import codec as codecs
from aiokafka.record import default_records, legacy_records, memory_records
from aiokafka.record.util import calc_crc32c
from faust.transport.drivers import aiokafka as faust_aiokafka
from raw_batches import batch, value
from test_header_keys import TP, fetched, header_names

from modfleet.contracts.schemas import check
from modfleet.emit.dead_letter import dead_letter_message
from modfleet.errors import FatalError
from modfleet.ingest.decode import Record, Rejection, UnreadRecord, decode
from modfleet.settings import Settings
from modfleet.stream import inflate, lenient
from modfleet.stream.app import _record
from modfleet.stream.faust_app import faust_app
from modfleet.stream.transport import use_consumer

LIMIT = 4 * 1024 * 1024
BOMB_BYTES = 64 * 1024 * 1024
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
ENCODE: dict[int, Callable[[bytes], bytes]] = {
    1: codecs.gzip_encode,
    2: codecs.snappy_encode,
    3: codecs.lz4_encode,
    4: codecs.zstd_encode,
}
RECORDS = 61  # a v2 batch's header: its records, or their compressed form, follow


@pytest.fixture(scope="module", autouse=True)
def _worker_transport() -> Iterator[None]:
    # What a worker does at start-up, with a bound the tests' bombs pass 16 times over.
    use_consumer(faust.App("batch-bombs-test", broker="kafka://127.0.0.1:9"), 100, LIMIT)
    yield
    inflate.install(inflate.DEFAULT_MAX_BATCH_INFLATED_BYTES)


def plain(base: int, values: list[bytes]) -> bytes:
    builder = default_records.DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 30)
    for delta, body in enumerate(values):
        builder.append(delta, 1_700_000_000_000, None, body, [])
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base)
    return bytes(raw)


def compressed(raw: bytes, codec: int, last_delta: int | None = None) -> bytes:
    """``raw`` (an uncompressed v2 batch) with its records compressed, CRC made good."""
    out = bytearray(raw[:RECORDS]) + ENCODE[codec](raw[RECORDS:])
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">h", out, 21, codec)
    if last_delta is not None:  # what a raw-protocol producer may claim
        struct.pack_into(">i", out, 23, last_delta)
    struct.pack_into(">I", out, 17, calc_crc32c(bytes(out[21:])))
    return bytes(out)


@pytest.fixture(scope="module")
def bombs() -> dict[int, bytes]:
    """Per codec, offsets 2..17: 16 records of 4 MiB of zeros, 64 MiB in all."""
    raw = plain(2, [bytes(BOMB_BYTES // 16)] * 16)
    return {codec: compressed(raw, codec) for codec in ENCODE}


def peak_growth(read: Callable[[], Any]) -> tuple[Any, int]:
    """What ``read`` returns, and how far above the resident memory before it the peak rose."""
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    before = _status("VmRSS")
    got = read()
    return got, _status("VmHWM") - before


def _status(field: str) -> int:
    found = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1)) * 1024


def unread(record: Any) -> UnreadRecord:
    assert (record.key, record.value) == (None, None)
    assert type(record.checksum) is UnreadRecord, record
    return record.checksum


@pytest.mark.parametrize("codec", CODECS.values(), ids=CODECS.keys())
def test_a_bomb_costs_only_its_own_offsets_and_memory_follows_the_bound(
    bombs: dict[int, bytes], codec: int
) -> None:
    raw = batch(0, 2, set()) + bombs[codec] + batch(18, 2, set())
    records = fetched(raw)
    got, growth = peak_growth(lambda: list(records))

    assert growth < LIMIT + 6 * 1024 * 1024, f"{growth:,} bytes for a bound of {LIMIT:,}"
    assert [r.offset for r in got] == list(range(20))
    assert [r.value for r in got[:2] + got[18:]] == [value(i) for i in (0, 1, 18, 19)]
    letters = [unread(r) for r in got[2:18]]
    assert [letter.offset for letter in letters] == list(range(2, 18))
    assert {letter.why.code for letter in letters} == {"too_large"}
    name = next(k for k, v in CODECS.items() if v == codec)
    assert letters[0].why.message == (
        f"not read: its record batch (offsets 2..17, {name}, {len(bombs[codec]) - RECORDS:,} "
        f"bytes compressed) inflates past max_batch_inflated_bytes ({LIMIT:,} bytes)"
    )
    assert letters[0].timestamp == 1_700_000_000.0
    assert records.next_fetch_offset == 20  # the partition moves on


def record_section(size: int) -> tuple[bytes, int]:
    """An uncompressed batch of one record whose records section is exactly ``size`` bytes,
    and the size of that record's value."""
    body = size - 16
    while (got := len(plain(0, [bytes(body)])) - RECORDS) != size:
        body += size - got
    return plain(0, [bytes(body)]), body


@pytest.mark.parametrize("codec", CODECS.values(), ids=CODECS.keys())
def test_the_bound_is_exact(codec: int) -> None:
    at, body = record_section(LIMIT)
    assert [len(r.value) for r in fetched(compressed(at, codec))] == [body]
    (past,) = fetched(compressed(record_section(LIMIT + 1)[0], codec))
    assert unread(past).why.code == "too_large"


def test_a_fetch_from_inside_a_bomb_letters_only_the_offsets_not_yet_read(
    bombs: dict[int, bytes],
) -> None:
    # A broker returns whole batches: after a commit at 5 the bomb from 2 comes again.
    records = fetched(bombs[4] + batch(18, 1, set()), fetch_offset=5)
    got = list(records)
    assert [r.offset for r in got] == list(range(5, 19))
    assert [unread(r).offset for r in got[:-1]] == list(range(5, 18))
    assert got[-1].value == value(18)


def rebased(raw: bytes, base: int) -> bytes:
    return base.to_bytes(8, "big") + raw[8:]  # the base offset is outside the CRC


def test_header_keys_that_are_not_utf8_still_read_on_both_sides_of_bombs(
    bombs: dict[int, bytes],
) -> None:
    raw = batch(0, 2, {1}) + bombs[1] + rebased(bombs[4], 18) + batch(34, 3, {35}, gzip=True)
    records = fetched(raw)
    got = list(records)
    assert [r.offset for r in got] == list(range(37))
    assert [unread(r).offset for r in got[2:34]] == list(range(2, 34))
    assert header_names(got[1])[1] == header_names(got[35])[1] == "\ufffdQ"
    assert [r.value for r in got[34:]] == [value(34), value(35), value(36)]
    assert records.next_fetch_offset == 37


def test_a_refused_batch_stands_for_its_own_offsets_only(bombs: dict[int, bytes]) -> None:
    # aiokafka inflates a batch whose offsets were all read before; refused, it stands for
    # none of them, and never for the offsets of the batch after it.
    got = list(fetched(bombs[4] + batch(18, 2, set()), fetch_offset=18))
    assert [(r.offset, r.value) for r in got] == [(18, value(18)), (19, value(19))]


def test_records_read_by_another_reader_still_fail_loudly_on_a_bomb(
    bombs: dict[int, bytes],
) -> None:
    # A reader that does not say which batch it is on: nothing to stand for, so no letters.
    records = lenient.LenientPartitionRecords(
        TP, memory_records.MemoryRecords(bombs[4]), [], 0, None, None, True, 0
    )
    with pytest.raises(inflate.InflatesTooFar, match="zstd"):
        list(records)


def test_a_bomb_claiming_two_billion_offsets_costs_a_bounded_number_of_letters() -> None:
    bomb = compressed(plain(0, [bytes(8 * 1024 * 1024)]), 4, last_delta=2**31 - 1)
    records = fetched(bomb + batch(2**31, 1, set()))
    got = list(records)
    assert len(got) == inflate.MOST_LETTERS + 1
    last = unread(got[-2])
    assert last.offset == 2**31 - 1
    assert last.why.message.endswith(f"; this dead letter stands for 9999..{2**31 - 1}")
    assert [r.offset for r in got[: inflate.MOST_LETTERS - 1]] == list(range(9999))
    assert got[-1].value == value(2**31)


def legacy(offset: int, values: list[bytes], codec: int = 0) -> bytes:
    builder = legacy_records.LegacyRecordBatchBuilder(1, codec, 1 << 30)
    for delta, body in enumerate(values):
        builder.append(delta, 1_700_000_000_000, None, body)
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, offset)  # a broker gives a wrapper its last record's offset
    return bytes(raw)


def test_a_legacy_compressed_message_past_the_bound_is_refused_too() -> None:
    bomb = legacy(2, [bytes(2 * 1024 * 1024)] * 3, codec=1)
    got = list(fetched(bomb + legacy(3, [value(3)])))
    assert [r.offset for r in got] == [0, 1, 2, 3]
    assert [unread(r).why.code for r in got[:3]] == ["too_large"] * 3
    assert got[3].value == value(3)


def test_a_frame_that_understates_its_size_is_still_held_to_the_bound() -> None:
    # The frame headers only size the first buffer; past it, the bound's own buffer decides.
    sound, bomb = bytes(LIMIT // 2), bytes(LIMIT * 2)
    for into, encode in (
        (cramjam.zstd.decompress_into, codecs.zstd_encode),
        (cramjam.lz4.decompress_into, codecs.lz4_encode),
    ):
        read = memoryview(encode(sound))
        assert bytes(inflate._into(into, read, 10, "test")) == sound
        with pytest.raises(inflate.InflatesTooFar):
            inflate._into(into, memoryview(encode(bomb)), 10, "test")


def test_a_raw_snappy_block_states_its_size_and_is_held_to_it() -> None:
    assert bytes(inflate._snappy(cramjam.snappy.compress_raw(b"ab" * 1000))) == b"ab" * 1000
    with pytest.raises(inflate.InflatesTooFar):
        inflate._snappy(cramjam.snappy.compress_raw(bytes(LIMIT + 1)))


def test_a_gzip_stream_of_several_members_reads_as_gzipfile_reads_it() -> None:
    two = codecs.gzip_encode(b"one ") + b"\0\0" + codecs.gzip_encode(b"two")
    assert inflate._gzip(two) == codecs.gzip_decode(two) == b"one two"
    past = codecs.gzip_encode(bytes(LIMIT // 2 + 1))
    with pytest.raises(inflate.InflatesTooFar):
        inflate._gzip(past + past)


def as_faust_sees_it(record: Any) -> Any:
    """The event the agent gets for an aiokafka record: faust's own conversion."""
    consumer = SimpleNamespace(app=SimpleNamespace(consumer_generation_id=1))
    return SimpleNamespace(message=faust_aiokafka.Consumer._to_message(consumer, TP, record))


def test_each_letter_is_a_dead_letter_the_schema_accepts(bombs: dict[int, bytes]) -> None:
    letter = next(iter(fetched(bombs[3])))
    record = _record(as_faust_sees_it(letter))
    assert type(record) is UnreadRecord
    why = decode(record)
    assert isinstance(why, Rejection)
    body = orjson.loads(dead_letter_message(record, why, "dead-letter").value)
    check("dead_letter", body)
    assert body["reason"] == {"code": "too_large", "field": None, "message": why.message}
    assert why.message.startswith("not read: its record batch (offsets 2..17, lz4,")
    assert body["source"] == {
        "topic": TP.topic,
        "partition": TP.partition,
        "offset": 2,
        "timestamp": "2023-11-14T22:13:20.000Z",
        "key_b64": None,
        "value_bytes": 0,
        "value_sha256": None,
    }


def test_no_record_off_the_wire_passes_for_an_unread_one() -> None:
    # A tombstone keeps its reason, whatever the producer put around it: a legacy record's
    # checksum is its CRC, a v2 record's None.
    for checksum in (None, 1234):
        tombstone = next(iter(fetched(plain(0, [b"x"]))))
        tombstone.value, tombstone.checksum = None, checksum
        record = _record(as_faust_sees_it(tombstone))
        assert type(record) is Record
        why = decode(record)
        assert isinstance(why, Rejection)
        assert why.code == "not_json"


def test_an_aiokafka_whose_readers_lost_a_codec_name_fails_the_worker_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(default_records, "zstd_decode")
    with pytest.raises(FatalError, match="zstd_decode"):
        inflate.check_aiokafka()


def test_a_cramjam_that_words_a_full_buffer_otherwise_fails_the_worker_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inflate, "_FULL", "output buffer too small")
    with pytest.raises(FatalError, match="DecompressionError"):
        inflate.check_aiokafka()
    assert default_records.gzip_decode is inflate._gzip  # the check leaves the worker's own
    assert inflate._limit == LIMIT


def test_the_worker_app_applies_the_setting() -> None:
    faust_app(Settings(max_batch_inflated_bytes=8 * 1024 * 1024))
    try:
        assert inflate._limit == 8 * 1024 * 1024
    finally:
        inflate.install(LIMIT)
