"""A TCP proxy in front of Redis that counts round trips, for the round-trips-per-batch goal.

Redis cannot count round trips itself: ``INFO commandstats`` counts a pipelined batch of SETs as
that many commands, and read events depend on socket buffer sizes. So the worker talks to Redis
through this proxy, which reads the RESP protocol in both directions and counts a round trip
each time the client sends a command while no reply is owed to it: a pipeline of 256 SETs is
then one round trip, an MGET one, and a PING before a command (redis-py's health check)
another. The proxy runs as its own process, so that it never waits on the benchmark's event
loop; the counters live in a small memory-mapped file that the benchmark reads at any moment.

Round trips that only keep a connection going (``CLIENT SETINFO`` when redis-py connects, a
health-check ``PING``) are also counted apart, by the first command of the round trip, so
that a one-off connection set-up is not charged to every micro-batch of a short run. So is the
read of the fleet's shared crash journal (``LRANGE``), once a partition assignment, and its
write (``MULTI``), once a start after a death: neither is a batch's.

Run as ``python -m modfleet.bench.redis_proxy LISTEN_PORT UPSTREAM_PORT COUNTERS_FILE``.
"""

from __future__ import annotations

import asyncio
import mmap
import struct
import sys
from pathlib import Path

_NAMES = ("round_trips", "upkeep_round_trips", "commands", "replies", "connections")
_TRIPS, _UPKEEP, _COMMANDS, _REPLIES, _CONNECTIONS = range(len(_NAMES))
_FORMAT = f"<{len(_NAMES)}q"
COUNTERS_SIZE = struct.calcsize(_FORMAT)
_LINE_TYPES = frozenset(b"+-:_,#(")
_BULK_TYPES = frozenset(b"$=!")
_AGGREGATE_TYPES = frozenset(b"*~>")
_UPKEEP_COMMANDS = frozenset(
    (b"CLIENT", b"HELLO", b"AUTH", b"SELECT", b"PING", b"READONLY", b"LRANGE", b"MULTI")
)


def read_counters(path: Path) -> dict[str, int]:
    """The proxy's counters as they are now (all zero before it started)."""
    raw = path.read_bytes()[:COUNTERS_SIZE].ljust(COUNTERS_SIZE, b"\0")
    return dict(zip(_NAMES, struct.unpack(_FORMAT, raw), strict=True))


def _value_end(buf: bytearray, pos: int) -> int | None:
    """End of the RESP value that starts at ``pos``, or None while it is incomplete."""
    if pos >= len(buf):
        return None
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        return None
    kind = buf[pos]
    if kind not in _BULK_TYPES and kind not in _AGGREGATE_TYPES and kind not in b"%|":
        return eol + 2  # a simple type, or an inline command
    count = int(buf[pos + 1 : eol])
    if kind in _BULK_TYPES:
        end = eol + 2 + (count + 2 if count >= 0 else 0)
        return end if end <= len(buf) else None
    after = _items_end(buf, eol + 2, count * 2 if kind in b"%|" else count)
    if kind == ord("|") and after is not None:  # an attribute precedes the value it annotates
        return _value_end(buf, after)
    return after


def _items_end(buf: bytearray, pos: int, items: int) -> int | None:
    end: int | None = pos
    for _ in range(max(items, 0)):
        if end is None:
            return None
        end = _value_end(buf, end)
    return end


def _command_name(request: bytes) -> bytes:
    """The command of a request (an array of bulk strings: ``*2 $4 PING ...``), upper-cased."""
    parts = request.split(b"\r\n", 3)
    return parts[2].upper() if len(parts) > 2 and request[:1] == b"*" else b""


class _Stream:
    """Counts the complete top-level RESP values in one direction of a connection."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.first = b""  # the start of the first value completed by the last feed

    def feed(self, data: bytes) -> int:
        self._buf += data
        done, pos = 0, 0
        while pos < len(self._buf):
            end = _value_end(self._buf, pos)
            if end is None:
                break
            if done == 0:
                self.first = bytes(self._buf[pos : min(end, pos + 64)])
            done, pos = done + 1, end
        del self._buf[:pos]
        return done


class _Counters:
    def __init__(self, path: Path) -> None:
        path.write_bytes(b"\0" * COUNTERS_SIZE)
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), COUNTERS_SIZE)
        self.values = [0] * len(_NAMES)

    def add(self, index: int, amount: int) -> None:
        self.values[index] += amount
        struct.pack_into(_FORMAT, self._map, 0, *self.values)


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client.reply(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    """The worker's side of one connection; owns the connection to Redis behind it."""

    def __init__(self, upstream_port: int, counters: _Counters) -> None:
        self.upstream_port = upstream_port
        self.counters = counters
        self.requests, self.replies = _Stream(), _Stream()
        self.owed = 0  # replies Redis still owes the client
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self._connecting: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()  # until Redis is connected behind it
        self.counters.add(_CONNECTIONS, 1)
        self._connecting = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, self.upstream = await loop.create_connection(
                lambda: _Upstream(self), "127.0.0.1", self.upstream_port
            )
        except OSError:
            self.close()
            return
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        assert self.upstream is not None
        assert self.upstream.transport is not None
        self.upstream.transport.write(data)
        sent = self.requests.feed(data)
        if sent:
            if self.owed == 0:
                self.counters.add(_TRIPS, 1)
                if _command_name(self.requests.first) in _UPKEEP_COMMANDS:
                    self.counters.add(_UPKEEP, 1)
            self.owed += sent
            self.counters.add(_COMMANDS, sent)

    def reply(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
        answered = self.replies.feed(data)
        self.owed = max(0, self.owed - answered)
        self.counters.add(_REPLIES, answered)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(listen_port: int, upstream_port: int, counters_path: Path) -> None:
    counters = _Counters(counters_path)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Client(upstream_port, counters), "127.0.0.1", listen_port
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port, upstream, path = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    asyncio.run(serve(port, upstream, path))
