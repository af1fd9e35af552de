"""Commands packed in C: redis-py's asyncio connections pack every argument in Python.

The cache's two commands carry a whole batch (a lookup's keys, a write's keys and sealed
values): packed by redis-py's asyncio client they cost 1.1 us a key and 2.1 us an entry, by
hiredis's packer (which redis-py's synchronous client uses, and which ships with the hiredis
reply parser we already depend on) 0.2 and 0.45 (docs/benchmarks.md). The bytes on the wire are
the same.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

_PACKER = HiredisRespSerializer()


class _PackedByHiredis:
    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _PACKER.pack(*args)
        return packed


def packed_by_hiredis(client: aioredis.Redis) -> aioredis.Redis:
    """``client``, whose new connections (plain, TLS or Unix socket, as its URL said) pack
    commands with hiredis; as it was where hiredis is not installed."""
    pool = client.connection_pool
    base = pool.connection_class
    if HIREDIS_AVAILABLE and not issubclass(base, _PackedByHiredis):
        pool.connection_class = type(f"HiredisPacked{base.__name__}", (_PackedByHiredis, base), {})
    return client
