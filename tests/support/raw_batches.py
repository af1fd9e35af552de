"""Record batches no aiokafka producer would send, sent as a raw-protocol producer sends them."""

from __future__ import annotations

import struct
import time

from aiokafka.client import AIOKafkaClient
from aiokafka.codec import zstd_encode
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from modfleet.kafka import client_options
from modfleet.settings import Settings


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
