"""Record batches no aiokafka producer would send, sent as a raw-protocol producer sends them."""

from __future__ import annotations

import struct
import time

from aiokafka.client import AIOKafkaClient
from aiokafka.codec import gzip_encode, zstd_encode
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from modfleet.kafka import client_options
from modfleet.settings import Settings

PLACEHOLDER = "@@"  # replaced by the hostile bytes after the builder has written the batch
HOSTILE = b"\xffQ"
HEADER_CRC_START = 21  # the CRC covers the bytes from the batch attributes to the end
RECORDS_START = 61  # v2 batch header size: the records, or their compressed form, follow


def value(offset: int) -> bytes:
    return b'{"schema_version":1,"post_id":"p-%d","tenant":"acme","text":"hi"}' % offset


def batch(
    base: int,
    count: int,
    hostile: set[int],
    *,
    gzip: bool = False,
    producer_id: int = -1,
    values: list[bytes] | None = None,
) -> bytes:
    """A v2 batch of ``count`` records from offset ``base``; those in ``hostile`` carry a
    header key that is not UTF-8 between two ordinary headers. A producer id makes it part
    of that producer's transaction."""
    transactional = int(producer_id >= 0)
    builder = DefaultRecordBatchBuilder(2, 0, transactional, producer_id, 0, 0, 1 << 22)
    for delta in range(count):
        offset = base + delta
        headers = [("a", b"1"), (PLACEHOLDER, b"v"), ("traceparent", b"t")]
        body = value(offset) if values is None else values[delta]
        builder.append(delta, 1_700_000_000_000, None, body, headers)
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base)  # the base offset is outside the CRC
    for delta in range(count):
        at = raw.index(PLACEHOLDER.encode())
        raw[at : at + 2] = HOSTILE if base + delta in hostile else b"ok"
    if gzip:
        packed = gzip_encode(bytes(raw[RECORDS_START:]))
        raw = raw[:RECORDS_START] + packed
        struct.pack_into(">i", raw, 8, len(raw) - 12)  # length after the length field
        attributes = struct.unpack_from(">h", raw, 21)[0]
        struct.pack_into(">h", raw, 21, attributes | 0x01)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[HEADER_CRC_START:])))
    return bytes(raw)


def zstd_bomb(records: int, each: int) -> bytes:
    """A v2 batch of ``records`` records of ``each`` zero bytes, zstd: a few kB on the wire."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, records * each + (1 << 20))
    for delta in range(records):
        builder.append(delta, None, None, bytes(each), [])
    plain = builder.build()
    raw = bytearray(plain[:61]) + zstd_encode(bytes(plain[61:]))
    del plain
    struct.pack_into(">i", raw, 8, len(raw) - 12)
    struct.pack_into(">h", raw, 21, 4)  # zstd
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    return bytes(raw)


async def produce_raw(settings: Settings, topic: str, records: bytes) -> None:
    """Append ``records`` (one or more whole batches) to partition 0 of ``topic`` as they are."""
    client = AIOKafkaClient(**client_options(settings))
    await client.bootstrap()
    try:
        leader = None
        deadline = time.monotonic() + 20
        while leader is None and time.monotonic() < deadline:
            await client.force_metadata_update()
            leader = client.cluster.leader_for_partition(TopicPartition(topic, 0))
        assert leader is not None, f"no leader for {topic}"
        request = ProduceRequest(None, -1, 10_000, [(topic, [(0, records)])])
        response = await client.send(leader, request)
        errors = [p[1] for _, partitions in response.topics for p in partitions]
        assert errors == [0], response
    finally:
        await client.close()
