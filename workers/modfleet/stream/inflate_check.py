"""``inflate``'s start-up check: a bomb and a sound batch of each codec through each reader.

The C readers give no code to inspect, so reading is the only proof that they still look the
codec functions up by name; the bombs also pin cramjam's way of saying its buffer is full.
"""

from __future__ import annotations

from typing import Any

from aiokafka.record import default_records, legacy_records

from modfleet.stream.inflate import InflatesTooFar

LIMIT = 64 * 1024  # the bound while the check runs: its bombs stay small
_SOUND = [bytes([n]) * 1024 for n in range(1, 5)]
_BOMB = [bytes(4 * LIMIT)]
_V2 = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_LEGACY = {1: "gzip", 2: "snappy", 3: "lz4"}  # zstd needs v2


def run() -> str | None:
    """What is wrong, or None. Call with inflate's decoders in place and ``LIMIT`` set."""
    return _readers() or _fetch()


def _fetch() -> str | None:
    """A bomb between sound batches, read as the worker's fetcher reads a partition's fetch."""
    from aiokafka.structs import TopicPartition

    from modfleet.stream.lenient import KeptRecords, LenientPartitionRecords

    raw = _v2_raw(1, _SOUND, 0) + _v2_raw(4, _BOMB * 2, 4) + _v2_raw(3, _SOUND, 6)
    tp = TopicPartition("modfleet-self-test", 0)
    records = LenientPartitionRecords(tp, KeptRecords(raw), [], 0, None, None, True, 0)
    try:
        got = [(r.offset, r.value or type(r.checksum).__name__) for r in records]
    except Exception as err:  # noqa: BLE001 - the reason the worker will not start
        return f"a fetch holding a bomb raises {type(err).__name__}: {err}"
    sound = list(enumerate(_SOUND))
    expected = sound + [(4, "UnreadRecord"), (5, "UnreadRecord")] + [(6 + i, v) for i, v in sound]
    if got != expected or records.next_fetch_offset != 10:
        return f"a fetch holding a bomb reads as {[offset for offset, _ in got]}"
    return None


def _readers() -> str | None:
    kinds = (
        (_V2, _v2, {default_records.DefaultRecordBatch, default_records._DefaultRecordBatchPy}),
        (_LEGACY, _legacy, {legacy_records.LegacyRecordBatch, legacy_records._LegacyRecordBatchPy}),
    )
    for codecs, read, readers in kinds:
        for codec, name in codecs.items():
            for reader in readers:
                failure = _check(
                    name, reader.__name__, lambda v, c=codec, r=reader, f=read: f(r, c, v)
                )
                if failure:
                    return failure
    return None


def _check(codec: str, reader: str, read: Any) -> str | None:
    try:
        if read(_SOUND) != _SOUND:
            return f"{reader} reads a {codec} batch within the bound wrong"
        read(_BOMB)
    except InflatesTooFar:
        return None
    except Exception as err:  # noqa: BLE001 - the reason the worker will not start
        return f"{reader} raises {type(err).__name__} on a {codec} batch: {err}"
    return f"{reader} still inflates a {codec} batch past the bound"


def _v2(reader: Any, codec: int, values: list[bytes]) -> list[bytes]:
    return [bytes(r.value) for r in reader(_v2_raw(codec, values, 0))]


def _v2_raw(codec: int, values: list[bytes], base: int) -> bytes:
    builder = default_records.DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 1 << 22)
    for delta, value in enumerate(values):
        builder.append(delta, 0, None, value, [])
    raw = builder.build()
    raw[:8] = base.to_bytes(8, "big")  # outside the CRC, as a broker sets it
    return bytes(raw)


def _legacy(reader: Any, codec: int, values: list[bytes]) -> list[bytes]:
    builder = legacy_records.LegacyRecordBatchBuilder(1, codec, 1 << 22)
    for offset, value in enumerate(values):
        builder.append(offset, 0, None, value)
    return [bytes(r.value) for r in reader(bytes(builder.build()), 1)]
