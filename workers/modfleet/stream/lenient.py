"""Records whose header keys are not UTF-8 reach the worker like any other.

The Kafka protocol does not forbid such a key: librdkafka and raw-protocol producers can send
one, Apache Kafka's broker passes it on, and Java consumers decode it leniently. aiokafka's C
record parser raises ``UnicodeDecodeError`` on it instead, while its fetcher unpacks the batch:
faust's fetcher crashes and the worker exits, and each worker given the partition next fetches
the same batch from the same committed offset, so one record stops the fleet's partition.

Here a fetch whose C reading raises on a header key is read again from the record it stopped
at by a Python reader that decodes header keys with U+FFFD for bad bytes, as Java does. Every
other fetch stays on the C reader untouched: the only cost on that path is an ``except``
clause, which costs nothing until it is taken. U+FFFD rather than surrogate escapes because a
worker compares and lowercases header names but never encodes one back, and a name that is
valid ``str`` cannot make anything downstream (``encode``, orjson, logging) raise; a name with
U+FFFD in it can never equal ``traceparent`` or ``tracestate``, the only names carried on.

The same class reads on past a compressed batch that would inflate past its bound (``inflate``
raises there): each offset of that batch comes out as a record to dead-letter, and the rest of
the fetch is read as before, so that a decompression bomb costs only its own offsets.

aiokafka gives no way in, so this relies on its internals, each named in ``_PINS`` and checked
with a hostile batch at start-up (``check_aiokafka``), so that an aiokafka that changes them
stops the worker saying why rather than silently stalling a partition again.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

import aiokafka
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record import default_records
from aiokafka.record.legacy_records import LegacyRecordBatch
from aiokafka.record.util import calc_crc32c, decode_varint
from aiokafka.structs import TopicPartition

from modfleet.errors import FatalError
from modfleet.stream.inflate import InflatesTooFar, unread_records

# The fetcher builds each partition's records through these module names; swapping them is
# the only way to reach the reading without copying the fetcher.
_FETCHER_BUILDS = ("MemoryRecords", "PartitionRecords")
# (class, method, the names its code must use): what the classes below override or read.
_PINS: tuple[tuple[Any, str, tuple[str, ...]], ...] = (
    (
        fetcher.PartitionRecords,
        "__init__",
        ("_tp", "_records", "_records_iterator", "_unpack_records"),
    ),
    (fetcher.PartitionRecords, "__next__", ("_records_iterator",)),
    (
        fetcher.PartitionRecords,
        "_unpack_records",
        ("_records", "next_fetch_offset", "next_batch", "has_next"),
    ),
    (default_records._DefaultRecordBatchPy, "__next__", ("_read_msg",)),
    (default_records._DefaultRecordBatchPy, "__init__", ("_buffer", "_pos")),
)
_NAME_ERRORS = "replace"
_LENGTH = struct.Struct(">i")
_BATCH_HEADER = 61  # a v2 batch's header; a legacy message is at least 26 bytes
_LEGACY_MIN = 26


class KeptRecords(fetcher.MemoryRecords):  # type: ignore[misc]
    """aiokafka's reader of one partition's fetch, keeping the fetched bytes to read again and
    the batch being read, for one refused while inflating (``inflate``).

    The C reader keeps the bytes anyway; this only keeps a name for them. Its methods are the C
    ones, but for one Python call a batch (about 0.1 us) to keep that name: none per record."""

    __slots__ = ("current", "raw")

    def __init__(self, raw: bytes) -> None:
        super().__init__(raw)
        self.raw = raw
        self.current: Any = None

    def next_batch(self) -> Any:
        batch = self.current = super().next_batch()
        return batch


class LenientPartitionRecords(fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's records of one partition's fetch, read again leniently where C raised, and
    past a batch too big to inflate (``inflate``), whose offsets come out as unread records."""

    _tp: TopicPartition
    next_fetch_offset: int
    _records: Any
    _records_iterator: Any  # None once drained, as aiokafka leaves it

    def __next__(self) -> Any:
        # aiokafka's own __next__, plus the except clauses: a header key, a batch refused.
        try:
            return next(self._records_iterator)
        except StopIteration:
            self._records_iterator = None
            raise
        except (UnicodeDecodeError, CorruptRecordException) as err:
            if not _header_key_error(err) or not isinstance(self._records, KeptRecords):
                raise
            # aiokafka moved next_fetch_offset past every record it delivered and set the
            # transaction state up to this batch: its own loop carries on from there.
            self._records = LenientRecords(self._records.raw, self.next_fetch_offset)
            self._records_iterator = self._unpack_records()
            return next(self)
        except InflatesTooFar as err:
            batch = getattr(self._records, "current", None)
            if batch is None:  # not records this was written for: stay loud
                raise
            self._records_iterator = self._unread(batch, err)
            return next(self)

    def _unread(self, batch: Any, err: InflatesTooFar) -> Iterator[Any]:
        """A record for each offset of the batch aiokafka refused to inflate, then the rest."""
        tp = self._tp
        for record in unread_records(batch, self.next_fetch_offset, tp.topic, tp.partition, err):
            self.next_fetch_offset = record.offset + 1
            yield record
        self.next_fetch_offset = max(self.next_fetch_offset, batch.next_offset)
        # The records are already past that batch: aiokafka's loop reads on from the next.
        yield from self._unpack_records()


def _header_key_error(err: Exception) -> bool:
    # The C reader raises the decode error itself; the Python one (AIOKAFKA_NO_EXTENSIONS)
    # wraps it in CorruptRecordException.
    return isinstance(err, UnicodeDecodeError) or isinstance(err.__cause__, UnicodeDecodeError)


class LenientRecords:
    """A fetch's batches from the one holding ``resume_at``, read in Python.

    The batches before it were delivered already; aiokafka's loop would move the position
    back to each one's end if it saw them again."""

    def __init__(self, raw: bytes, resume_at: int) -> None:
        # One batch ahead, for has_next: each is a copy, so not the whole fetch at once.
        self._rest = _batches(memoryview(raw), resume_at)
        self._next = next(self._rest, None)
        self.current: Any = None

    def has_next(self) -> bool:
        return self._next is not None

    def next_batch(self) -> Any:
        self.current, self._next = self._next, next(self._rest, None)
        return self.current


def _batches(raw: memoryview, resume_at: int) -> Iterator[Any]:
    # Every format has a batch's offset at 0, its length at 8 and its magic at 16; a partial
    # batch at the end is the broker's cut-off at the fetch size, which aiokafka ignores too.
    pos = 0
    while len(raw) - pos >= 12:
        end = pos + 12 + _LENGTH.unpack_from(raw, pos + 8)[0]
        if end > len(raw):
            return
        if end - pos < _LEGACY_MIN:
            raise CorruptRecordException("Record size is less than the minimum record overhead")
        magic = raw[pos + 16]
        base = struct.unpack_from(">q", raw, pos)[0]
        if magic >= 2:
            if end - pos < _BATCH_HEADER:
                raise CorruptRecordException("Record batch shorter than its header")
            if base + _LENGTH.unpack_from(raw, pos + 23)[0] >= resume_at:
                yield LenientBatch(raw[pos:end])
        elif base >= resume_at:  # a legacy wrapper's offset is its last record's
            yield LegacyRecordBatch(bytes(raw[pos:end]), magic)
        pos = end


class LenientBatch(default_records._DefaultRecordBatchPy):  # type: ignore[misc]
    """aiokafka's pure-Python v2 batch (CRC, decompression, limits), header keys lenient."""

    _buffer: bytearray
    _pos: int

    def _read_msg(self, decode: Callable[[Any, int], tuple[int, int]] = decode_varint) -> Any:
        # aiokafka's _read_msg but for the header key's decoding: the v2 record is
        # Length Attributes TimestampDelta OffsetDelta Key Value [HeaderKey HeaderValue].
        buffer, pos = self._buffer, self._pos
        length, pos = decode(buffer, pos)
        start = pos
        _, pos = decode(buffer, pos)  # record attributes: unused in v2
        ts_delta, pos = decode(buffer, pos)
        log_append = self.timestamp_type == self.LOG_APPEND_TIME
        timestamp = self.max_timestamp if log_append else self.first_timestamp + ts_delta
        offset_delta, pos = decode(buffer, pos)
        key, pos = _nullable(buffer, pos, decode)
        value, pos = _nullable(buffer, pos, decode)
        count, pos = decode(buffer, pos)
        if count < 0:
            raise CorruptRecordException(f"Found invalid number of record headers {count}")
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(count):
            size, pos = decode(buffer, pos)
            if size < 0:
                raise CorruptRecordException(f"Invalid negative header key size {size}")
            name = bytes(buffer[pos : pos + size]).decode("utf-8", _NAME_ERRORS)
            header_value, pos = _nullable(buffer, pos + size, decode)
            headers.append((name, header_value))
        if pos - start != length:
            raise CorruptRecordException(
                f"Invalid record size: expected {length} bytes, read {pos - start}"
            )
        self._pos = pos
        offset = self.base_offset + offset_delta
        return default_records._DefaultRecordPy(
            offset, timestamp, self.timestamp_type, key, value, headers
        )


def _nullable(
    buffer: Any, pos: int, decode: Callable[[Any, int], tuple[int, int]]
) -> tuple[bytes | None, int]:
    size, pos = decode(buffer, pos)
    if size < 0:
        return None, pos
    return bytes(buffer[pos : pos + size]), pos + size


def install() -> None:
    """Make every aiokafka consumer in this process read header keys leniently.

    Process-wide, as the fetcher's module names are: a fetch reads as before unless aiokafka
    would have raised on a header key. Idempotent. Raises FatalError if aiokafka changed."""
    if fetcher.PartitionRecords is LenientPartitionRecords:
        return
    check_aiokafka()
    fetcher.MemoryRecords = KeptRecords
    fetcher.PartitionRecords = LenientPartitionRecords


def check_aiokafka() -> None:
    """Fail, saying what, unless this aiokafka still works as the classes above assume."""
    uses = set(fetcher.Fetcher._proc_fetch_request.__code__.co_names)
    for name in _FETCHER_BUILDS:
        if name not in uses or not hasattr(fetcher, name):
            raise FatalError(_changed(f"its fetcher no longer builds records with {name}"))
    for owner, method, names in _PINS:
        code = getattr(getattr(owner, method, None), "__code__", None)
        missing = set(names) - set(code.co_names if code else ())
        if missing:
            where = f"{owner.__name__}.{method}"
            raise FatalError(_changed(f"{where} no longer uses {sorted(missing)}"))
    _self_test()


def _self_test() -> None:
    builder = default_records.DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 16)
    for offset in range(3):
        builder.append(offset, 0, None, b"v", [("ok", b"h")])
    raw = bytearray(builder.build())
    at = raw.index(b"ok", raw.index(b"ok") + 1)
    raw[at] = 0xFF  # the second record's header key: b"\xffk"
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    tp = TopicPartition("modfleet-self-test", 0)
    records = LenientPartitionRecords(tp, KeptRecords(bytes(raw)), [], 0, None, None, True, 0)
    try:
        got = [(r.offset, r.headers) for r in records]
    except (UnicodeDecodeError, CorruptRecordException) as err:
        raise FatalError(_changed(f"a header key that is not UTF-8 still raises: {err}")) from err
    expected = [(0, (("ok", b"h"),)), (1, (("\ufffdk", b"h"),)), (2, (("ok", b"h"),))]
    if got != expected or records.next_fetch_offset != 3:
        raise FatalError(_changed(f"a header key that is not UTF-8 reads as {got}"))


def _changed(what: str) -> str:
    return (
        f"this aiokafka ({aiokafka.__version__}) is not the one modfleet.stream.lenient was "
        f"written for: {what}. A record whose header key is not UTF-8 would stop its "
        "partition; check the reading in aiokafka/consumer/fetcher.py and update lenient.py"
    )
