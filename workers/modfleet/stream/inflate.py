"""A compressed record batch inflates to at most ``max_batch_inflated_bytes``, or is not read.

The broker bounds what a batch is on the wire (``max.message.bytes``, compressed); what it
inflates to is the producer's choice: 1 MiB of zstd holds gigabytes, of gzip a gigabyte.
aiokafka inflates a batch whole, in one unbounded call, before it reads a record of it (C and
Python readers, every codec), so one producer could have each worker given the partition
killed for memory in turn, at the same committed offset each time.

Here aiokafka's codec functions, which its readers (v2 and legacy, C and Python) look up by
name in their own modules at each call, are replaced by ones that stop past the bound and
raise ``InflatesTooFar``. ``lenient`` catches it and hands on, for each offset of that batch,
a record the decoder rejects as ``too_large`` (``UnreadRecord``); the rest of the fetch is
read as before. Within the bound a batch costs about what it did: gzip is one zlib call where
``GzipFile`` was a file (9-160 us less a batch of 2 kB-1 MB), snappy sums the lengths its
blocks state before inflating them, and zstd and lz4 write once into a buffer sized from their
frame headers where aiokafka also copied the result (2-4 us more a batch of a few kB, 30-40 us
less at 1 MB). A frame header can lie: it only sizes the first buffer, and a frame that
outgrows it is inflated again into a buffer of the bound's size, whose end stops it.

aiokafka gives no way in, so this relies on its internals, each named in ``_PINS`` and checked
with bombs at start-up (``check_aiokafka``), as ``lenient`` does for its own.
"""

from __future__ import annotations

import itertools
import logging
import mmap
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import aiokafka
import cramjam
from aiokafka.errors import CorruptRecordException
from aiokafka.record import default_records, legacy_records
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka

from modfleet.errors import FatalError
from modfleet.ingest.decode import Rejection, UnreadRecord

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_INFLATED_BYTES = 64 * 1024 * 1024
# One dead letter per offset of a refused batch, up to this many: the batch header's offset
# range is the producer's to choose (up to 2**31 offsets), and one letter then stands for the
# rest of it, naming them, so that a bomb cannot keep its partition busy with letters for days.
MOST_LETTERS = 10_000

_V2_NAMES = ("gzip_decode", "snappy_decode", "lz4_decode", "zstd_decode")
_LEGACY_NAMES = ("gzip_decode", "snappy_decode", "lz4_decode")
# (owner, method, the names its code must look up): the Python readers (the C ones are checked
# by reading bombs through them), and faust, which must carry a record's checksum on to the
# agent, where the unread record travels.
_PINS: tuple[tuple[Any, str, tuple[str, ...]], ...] = (
    (default_records._DefaultRecordBatchPy, "_maybe_uncompress", _V2_NAMES),
    (legacy_records._LegacyRecordBatchPy, "_decompress", _LEGACY_NAMES),
    (faust_aiokafka.Consumer, "_to_message", ("checksum",)),
)
# cramjam's error when the output buffer is full before the stream ends (pinned by the
# self-test: an overflow must read as too far, never as a corrupt stream or the reverse).
_FULL = "failed to write whole buffer"
_GZIP = 31  # zlib's wbits for a gzip member: header, CRC-32 and size checked
_CHUNK = 64 * 1024
_CUT_SHORT = "Compressed file ended before the end-of-stream marker was reached"  # GzipFile's
_XERIAL = b"\x82SNAPPY\x00" + struct.pack("!ii", 1, 1)  # aiokafka reads version 1 only
_I32 = struct.Struct(">i")
_LE32, _LE64 = struct.Struct("<I"), struct.Struct("<Q")
_ZSTD_FRAME, _LZ4_FRAME = 0xFD2FB528, 0x184D2204
_ZSTD_BLOCK = 128 * 1024  # the most one zstd block may inflate to
_LZ4_BLOCKS = {4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024}

_limit = DEFAULT_MAX_BATCH_INFLATED_BYTES  # process-wide, as aiokafka's module names are


class InflatesTooFar(Exception):
    """A batch's records would inflate past the bound: the batch is not read."""

    def __init__(self, limit: int, codec: str, size: int) -> None:
        super().__init__(f"a {codec} record batch of {size:,} bytes inflates past {limit:,}")
        self.limit = limit
        self.codec = codec
        self.size = size  # compressed


def _gzip(payload: Any) -> bytes:
    limit = _limit
    if not len(payload):
        return b""  # as GzipFile reads it
    inflater = zlib.decompressobj(_GZIP)
    first = inflater.decompress(payload, limit + 1)  # Kafka's producers write one member
    if len(first) > limit:
        raise InflatesTooFar(limit, "gzip", len(payload))
    if not inflater.eof:
        raise EOFError(_CUT_SHORT)
    if not inflater.unused_data:
        return first
    return _gzip_members(first, memoryview(inflater.unused_data), limit, len(payload))


def _gzip_members(first: bytes, rest: memoryview, limit: int, size: int) -> bytes:
    """The members after the first, as GzipFile reads them (after zero padding too).

    Fed a chunk at a time: zlib copies what follows a member's end, which would make a batch
    of many tiny members cost the square of its size."""
    parts, room, pos, inflater = [first], limit - len(first), 0, None
    while pos < len(rest):
        chunk = rest[pos : pos + _CHUNK]
        if inflater is None:
            padding = len(chunk) - len(bytes(chunk).lstrip(b"\0")) if chunk[0] == 0 else 0
            pos += padding
            if padding == len(chunk):
                continue
            inflater, chunk = zlib.decompressobj(_GZIP), chunk[padding:]
        part = inflater.decompress(chunk, room + 1)
        if len(part) > room:
            raise InflatesTooFar(limit, "gzip", size)
        room -= len(part)
        parts.append(part)
        pos += len(chunk) - len(inflater.unused_data)
        if inflater.eof:
            inflater = None
    if inflater is not None:
        raise EOFError(_CUT_SHORT)
    return b"".join(parts)


def _snappy(payload: Any) -> Any:
    # A raw snappy block states its inflated length first and the decoder holds it to it.
    limit = _limit
    view = memoryview(payload)
    if len(view) <= 16 or view[:16] != _XERIAL:
        if cramjam.snappy.decompress_raw_len(view) > limit:
            raise InflatesTooFar(limit, "snappy", len(view))
        return cramjam.snappy.decompress_raw(view)
    blocks, total, pos = [], 0, 16
    while pos < len(view):
        (size,) = _I32.unpack_from(view, pos)
        if size < 0:  # aiokafka's own loop would go back and read the same block forever
            raise CorruptRecordException(f"snappy block of {size} bytes")
        block = view[pos + 4 : pos + 4 + size]
        pos += 4 + size
        total += cramjam.snappy.decompress_raw_len(block)
        if total > limit:
            raise InflatesTooFar(limit, "snappy", len(view))
        blocks.append(block)
    return b"".join([cramjam.snappy.decompress_raw(block) for block in blocks])


def _lz4(payload: Any) -> Any:
    view = memoryview(payload)
    return _into(cramjam.lz4.decompress_into, view, _lz4_size(view), "lz4")


def _zstd(payload: Any) -> Any:
    view = memoryview(payload)
    return _into(cramjam.zstd.decompress_into, view, _zstd_size(view), "zstd")


def _into(
    decompress: Callable[[Any, Any], int], payload: memoryview, most: int | None, codec: str
) -> Any:
    """Inflate into a buffer of ``most`` bytes (the frames' own bound), else of the limit."""
    limit = _limit
    if most is not None and most <= limit:
        out = bytearray(most)
        try:
            return memoryview(out)[: decompress(payload, out)]
        except cramjam.DecompressionError as err:
            if str(err) != _FULL:
                raise
    # Mapped, not allocated: only the pages written to cost memory, not the bound's size.
    room = mmap.mmap(-1, limit)
    try:
        return memoryview(room)[: decompress(payload, room)]
    except cramjam.DecompressionError as err:
        if str(err) == _FULL:
            raise InflatesTooFar(limit, codec, len(payload)) from None
        raise


def _zstd_size(view: memoryview) -> int | None:
    """The most zstd frames inflate to by their block headers, if they read as frames."""
    limit, total, pos, end = _limit, 0, 0, len(view)
    try:
        while pos < end:
            (magic,) = _LE32.unpack_from(view, pos)
            if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame
                pos += 8 + _LE32.unpack_from(view, pos + 4)[0]
                continue
            if magic != _ZSTD_FRAME:
                return None
            flags = view[pos + 4]
            pos += 5 + (0 if flags & 0x20 else 1) + (0, 1, 2, 4)[flags & 3]
            content = (1 if flags & 0x20 else 0, 2, 4, 8)[flags >> 6]
            stated = None
            if content:
                stated = int.from_bytes(view[pos : pos + content], "little")
                stated += 256 if content == 2 else 0
            pos += content
            frame, last = 0, False
            while not last:
                header = view[pos] | view[pos + 1] << 8 | view[pos + 2] << 16
                kind, size, last = header >> 1 & 3, header >> 3, bool(header & 1)
                if kind == 3:
                    return None
                frame += _ZSTD_BLOCK if kind == 2 else size
                pos += 3 + (1 if kind == 1 else size)
                if total + frame > limit:  # a bomb's tiny blocks: no need to count them all
                    return total + frame
            pos += 4 if flags & 4 else 0
            total += frame if stated is None else min(frame, stated)
    except (IndexError, struct.error):
        return None
    return total


def _lz4_size(view: memoryview) -> int | None:
    """The most lz4 frames inflate to by their block headers, if they read as frames."""
    limit, total, pos = _limit, 0, 0
    try:
        while pos < len(view):
            (magic,) = _LE32.unpack_from(view, pos)
            if magic & 0xFFFFFFF0 == 0x184D2A50:
                pos += 8 + _LE32.unpack_from(view, pos + 4)[0]
                continue
            flags, most = view[pos + 4], _LZ4_BLOCKS.get(view[pos + 5] >> 4 & 7)
            if magic != _LZ4_FRAME or most is None:
                return None
            stated = _LE64.unpack_from(view, pos + 6)[0] if flags & 0x08 else None
            pos += 7 + (8 if flags & 0x08 else 0) + (4 if flags & 0x01 else 0)
            frame = 0
            while (word := _LE32.unpack_from(view, pos)[0]) != 0:
                size = word & 0x7FFFFFFF
                frame += size if word & 0x80000000 else most
                pos += 4 + size + (4 if flags & 0x10 else 0)
                if total + frame > limit:
                    return total + frame
            pos += 4 + (4 if flags & 0x04 else 0)
            total += frame if stated is None else min(frame, stated)
    except (IndexError, struct.error):
        return None
    return total


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "gzip_decode": _gzip,
    "snappy_decode": _snappy,
    "lz4_decode": _lz4,
    "zstd_decode": _zstd,
}


def unread_records(
    batch: Any, resume_at: int, topic: str, partition: int, err: InflatesTooFar
) -> Iterator[Any]:
    """aiokafka's records for the offsets of ``batch`` (refused) from ``resume_at`` on, each a
    record to dead-letter."""
    last = batch.next_offset - 1
    # A legacy wrapper knows only its last offset: its records are those after the last read.
    base = getattr(batch, "base_offset", resume_at)
    first = max(base, resume_at)
    stamp = -1
    if hasattr(batch, "first_timestamp"):
        stamp = batch.max_timestamp if batch.attributes & 0x08 else batch.first_timestamp
    seconds, millis = (stamp / 1000, stamp) if stamp > 0 else (None, None)
    why = (
        f"not read: its record batch (offsets {base}..{last}, {err.codec}, "
        f"{err.size:,} bytes compressed) inflates past max_batch_inflated_bytes "
        f"({err.limit:,} bytes)"
    )
    if last < first:  # a header claiming no offsets past those read: nothing left to stand for
        log.error("%s[%d]@%d: %s; no offsets left to dead-letter", topic, partition, first, why)
    singles = last + 1 if last - first < MOST_LETTERS else first + MOST_LETTERS - 1
    for offset in itertools.chain(range(first, singles), [last] if singles <= last else []):
        reason = (
            why if offset < singles else f"{why}; this dead letter stands for {singles}..{last}"
        )
        # The record travels in checksum: aiokafka and faust pass it on untouched, and a record
        # off the wire has None there (v2) or a CRC (legacy), so none can pass for one.
        letter = UnreadRecord(
            topic, partition, offset, seconds, None, None, (), why=Rejection("too_large", reason)
        )
        yield ConsumerRecord(topic, partition, offset, millis, 0, None, None, letter, -1, -1, ())


def install(limit: int) -> None:
    """Make every aiokafka reader in this process inflate a batch to at most ``limit`` bytes.

    Process-wide, as aiokafka's module names are; a second call only changes the limit.
    Raises FatalError if aiokafka or cramjam changed."""
    global _limit
    if limit < 1:
        raise ValueError(f"a batch inflates to at least 1 byte, not {limit}")
    if default_records.gzip_decode is not _gzip:
        check_aiokafka()
        _patch({})
    _limit = limit


def _readers() -> list[tuple[Any, tuple[str, ...]]]:
    from aiokafka.util import NO_EXTENSIONS

    found: list[tuple[Any, tuple[str, ...]]] = [
        (default_records, _V2_NAMES),
        (legacy_records, _LEGACY_NAMES),
    ]
    if not NO_EXTENSIONS:
        from aiokafka.record._crecords import default_records as c_v2
        from aiokafka.record._crecords import legacy_records as c_legacy

        found += [(c_v2, _V2_NAMES), (c_legacy, _LEGACY_NAMES)]
    return found


def _patch(decoders: dict[str, Any]) -> dict[str, Any]:
    """Set each reader module's codec names to ours (or to ``decoders``' own, where not None);
    returns what they were, keyed ``module:name``."""
    before: dict[str, Any] = {}
    for module, names in _readers():
        for name in names:
            before[f"{module.__name__}:{name}"] = getattr(module, name)
            chosen = decoders.get(f"{module.__name__}:{name}")
            setattr(module, name, chosen or _DECODERS[name])
    return before


def check_aiokafka() -> None:
    """Fail, saying what, unless aiokafka's readers still inflate through these names.

    Call it before any consumer reads: while it runs, the bound is its own, a small one."""
    for module, names in _readers():
        missing = [n for n in names if not callable(getattr(module, n, None))]
        if missing:
            raise FatalError(_changed(f"{module.__name__} has no {missing}"))
    for owner, method, names in _PINS:
        code = getattr(getattr(owner, method, None), "__code__", None)
        gone = set(names) - set(code.co_names if code else ())
        if gone:
            raise FatalError(_changed(f"{owner.__name__}.{method} no longer uses {sorted(gone)}"))
    from modfleet.stream import inflate_check

    global _limit
    before, kept = _patch({}), _limit
    _limit = inflate_check.LIMIT
    try:
        failure = inflate_check.run()
    finally:
        _patch(before)
        _limit = kept
    if failure:
        raise FatalError(_changed(failure))


def _changed(what: str) -> str:
    return (
        f"this aiokafka ({aiokafka.__version__}) or cramjam is not the one "
        f"modfleet.stream.inflate was written for: {what}. A compressed batch could inflate "
        "without bound; check aiokafka/record/*_records and update inflate.py"
    )
