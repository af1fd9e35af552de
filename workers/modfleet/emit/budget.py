"""The byte budget every output record is built to fit.

A record the producer or the broker refuses would stop the worker that built it, and then every
worker that takes the partition over: so sizes are decided here, before anything is sent, from
the producer's ``max_request_size`` and the brokers' ``max.message.bytes``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from modfleet.settings import Settings

# A record batch header (61 bytes) plus one record's varints, attributes and timestamp delta,
# rounded well up: the exact figure depends on the client's framing, which is not ours.
_FRAMING_BYTES = 512
# Keys are cut to this many bytes (a Kafka key may be about as large as the broker allows).
KEY_LIMIT = 1024
# W3C Trace Context: traceparent is 55 characters; tracestate at most 512 (32 list members).
TRACEPARENT_LENGTH = 55
TRACESTATE_LIMIT = 512


@dataclass(frozen=True, slots=True)
class Budget:
    record_bytes: int  # the most one record (key + value + headers + framing) may weigh
    escalation_text_bytes: int
    dead_letter_originals: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Budget:
        return cls(
            record_bytes=min(
                settings.producer_max_request_bytes, settings.broker_max_message_bytes
            ),
            escalation_text_bytes=settings.escalation_text_max_bytes,
            dead_letter_originals=settings.dead_letter_originals,
        )

    def value_bytes(self, key: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
        """Room left for the value once the key, the headers and the framing are counted."""
        return self.record_bytes - record_overhead(key, headers)

    def fits(self, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]) -> bool:
        return len(value) <= self.value_bytes(key, headers)


DEFAULT_BUDGET = Budget(record_bytes=1024 * 1024, escalation_text_bytes=256 * 1024)


def record_overhead(key: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    size = _FRAMING_BYTES + (len(key) if key else 0)
    if type(headers) is tuple and len(headers) <= 4:
        # An output's carried headers (at most content type and trace context): most outputs
        # share one such tuple, so its size is worked out once.
        return size + _shared_headers_size(headers)
    return size + _headers_size(headers)


def _headers_size(headers: Sequence[tuple[str, bytes]]) -> int:
    return sum(
        len(name.encode("utf-8", "surrogatepass")) + len(value) + 10 for name, value in headers
    )


_shared_headers_size = functools.lru_cache(maxsize=1024)(_headers_size)


def bounded_key(key: bytes | None) -> bytes | None:
    """The key itself when small; else its digest, which keeps it deterministic per record."""
    if key is None or len(key) <= KEY_LIMIT:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode("ascii")


def cut_utf8(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` UTF-8 bytes of ``text``, never splitting a character."""
    if len(text) * 4 <= limit:  # cheap: no character takes more than 4 bytes
        return text, False
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", "ignore"), True


def json_prefix(encoded: bytes, limit: int) -> str:
    """The longest start of the string whose JSON form (orjson's, quotes included) is
    ``encoded`` that takes at most ``limit`` bytes as JSON, quotes aside.

    Measured as JSON, not as UTF-8: a NUL is one byte of UTF-8 and six of JSON. Cut from the
    JSON form itself, so a hostile string costs one slice and one parse, never a search."""
    body = encoded[1 : min(len(encoded) - 1, max(0, limit) + 1)]
    # Never half an escape: the last backslash within an escape's length of the end opens one
    # when an even number of backslashes (escaped backslashes) come before it.
    opens = body.rfind(b"\\", max(0, len(body) - 6))
    if opens >= 0:
        before = opens
        while before > 0 and body[before - 1] == 0x5C:
            before -= 1
        if (opens - before) % 2 == 0:
            length = 6 if body[opens + 1 : opens + 2] == b"u" else 2
            if opens + length > len(body):
                body = body[:opens]
    # Never half a character: escapes are ASCII, so the tail's UTF-8 is the text's own.
    lead = len(body) - 1
    while lead > 0 and len(body) - lead < 4 and body[lead] & 0xC0 == 0x80:
        lead -= 1
    if lead >= 0 and body[lead] >= 0xC0:
        length = 2 if body[lead] < 0xE0 else 3 if body[lead] < 0xF0 else 4
        if lead + length > len(body):
            body = body[:lead]
    text: str = orjson.loads(b'"%s"' % body)
    return text


def fair_shares(sizes: Sequence[int], room: int) -> list[int]:
    """Bytes for each of several fields that share ``room``: a field that needs less than an
    even share keeps all of it, and what it leaves over is shared among the others."""
    shares = [0] * len(sizes)
    left = max(0, room)
    for rank, i in enumerate(sorted(range(len(sizes)), key=sizes.__getitem__)):
        shares[i] = min(sizes[i], left // (len(sizes) - rank))
        left -= shares[i]
    return shares
