"""The cache's connections pack commands with hiredis: the same bytes, on every kind of URL."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from modfleet.cache.packing import packed_by_hiredis

COMMANDS = [
    ("EVALSHA", "a" * 40, 2, "mf:v1:t:\u00e9k", b"k2", b"\x00\xff" * 70, 86_400),
    ("CONFIG GET", "maxmemory"),  # a command name of two words is sent as two arguments
    ("SET", memoryview(b"key"), 1.5, "EX", 10),
    ("MGET", *[f"key-{i}" for i in range(600)]),  # over redis-py's 6 kB chunking cut-off
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_hiredis_packs_the_bytes_redis_pys_own_packer_does(command: tuple[object, ...]) -> None:
    ours = packed_by_hiredis(aioredis.Redis()).connection_pool.make_connection()
    assert ours.pack_command.__module__ == "modfleet.cache.packing"
    theirs = Connection()
    assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6380/0", SSLConnection),
        ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_a_tls_or_socket_url_keeps_its_kind_of_connection(url: str, kind: type) -> None:
    pool = packed_by_hiredis(aioredis.Redis.from_url(url)).connection_pool
    assert issubclass(pool.connection_class, kind)
    assert pool.connection_class.__name__ == f"HiredisPacked{kind.__name__}"
    again = packed_by_hiredis(aioredis.Redis(connection_pool=pool)).connection_pool
    assert again.connection_class is pool.connection_class, "packed once, not wrapped twice"
