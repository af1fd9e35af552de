"""Dead-letter messages: the record that could not be decided, why, and where it came from.

Building one must not fail and must fit the broker, whatever the record holds: every field an
attacker controls (key, value, reason text quoting the value) is cut to the budget, and if even
that goes wrong there is a minimal form built from the record's coordinates alone.

Privacy: invalid input (the platform's to fix) carries its original so that it can be fixed and
replayed; modfleet's own failures (inference_failed, internal_error, undeliverable) carry a
reference (topic, partition, offset, SHA-256 of the value) and not the post, unless the
``dead_letter_originals`` setting asks for originals.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from modfleet.emit.budget import DEFAULT_BUDGET, KEY_LIMIT, Budget, bounded_key
from modfleet.emit.messages import (
    SCHEMA_VERSION,
    Outbound,
    carried_headers,
    iso_time,
    now_iso,
    trace_id_of,
)
from modfleet.ingest.decode import Record, Rejection, clip

log = logging.getLogger(__name__)

# Invalid input: the platform's to fix, so the original travels with the reason.
PLATFORM_CODES = frozenset({"not_utf8", "not_json", "schema_invalid", "too_large"})
_MESSAGE_LIMIT = 1000
_FIELD_LIMIT = 1024
# The dead-letter schema's bound on original_b64 (1,398,104 characters): a broker allowing
# larger messages must not get a dead letter that consumers validating it would refuse.
ORIGINAL_LIMIT = 1024 * 1024
_JSON_HEADERS: tuple[tuple[str, bytes], ...] = (("content-type", b"application/json"),)
# The post schema's limits (topics/schemas/post.v1.schema.json): what a minimal dead-letter keeps.
_MAX_POST_ID = 256
_MAX_TENANT = 128


def dead_letter_message(
    record: Record,
    why: Rejection,
    topic: str,
    budget: Budget = DEFAULT_BUDGET,
    trace_id: str | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> Outbound:
    try:
        return _full(record, why, topic, budget, trace_id, headers)
    except Exception as exc:  # noqa: BLE001 - the minimal form below cannot fail
        # The exception's text may quote the record: name its type only.
        log.error(
            "building the dead-letter of %s[%d]@%d failed (%s); sending the minimal form",
            record.topic,
            record.partition,
            record.offset,
            type(exc).__name__,
        )
        return minimal_dead_letter(record, why.code, topic)


def minimal_dead_letter(
    record: Record,
    code: str,
    topic: str,
    post_id: str | None = None,
    tenant: str | None = None,
) -> Outbound:
    """Coordinates, reason code and the value's digest: no parsing, nothing of unbounded size.

    ``post_id`` and ``tenant``, when the caller knows them (it stands in for a decision or an
    escalation the broker refused), name the post, so that consumers waiting on that post's
    outcomes know it is settled; each is kept only within the post schema's bounds."""
    value = record.value
    body = {
        "schema_version": SCHEMA_VERSION,
        "reason": {
            "code": code,
            "field": None,
            "message": "minimal dead-letter: read the post from its source record",
        },
        "source": {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": None,
            "key_b64": None,
            "value_bytes": 0 if value is None else len(value),
            "value_sha256": None if value is None else hashlib.sha256(value).hexdigest(),
        },
        "original_b64": "",
        "original_truncated": bool(value),
        "original_omitted": bool(value),
        "post_id": _bounded(post_id, _MAX_POST_ID),
        "tenant": _bounded(tenant, _MAX_TENANT),
        "dead_lettered_at": now_iso(),
        "trace_id": None,
    }
    return Outbound(
        topic,
        bounded_key(record.key),
        orjson.dumps(body),
        _JSON_HEADERS,
        "dead_letter",
        source=record,
        code=code,
    )


def _full(
    record: Record,
    why: Rejection,
    topic: str,
    budget: Budget,
    trace_id: str | None,
    headers: Sequence[tuple[str, bytes]],
) -> Outbound:
    value = record.value or b""
    headers = headers or carried_headers(record)
    key = why.post_id.encode("utf-8", "surrogatepass") if why.post_id else record.key
    key = bounded_key(key)
    include = why.code in PLATFORM_CODES or budget.dead_letter_originals
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "reason": {
            "code": why.code,
            "field": _pointer(why.field),
            "message": clip(why.message, _MESSAGE_LIMIT),
        },
        "source": _source(record),
        "original_b64": "",
        "original_truncated": False,
        "original_omitted": bool(value) and not include,
        "post_id": why.post_id,
        "tenant": why.tenant,
        "dead_lettered_at": now_iso(),
        "trace_id": trace_id or trace_id_of(record),
    }
    if value and not include:
        body["original_truncated"] = True
    elif value:
        room = budget.value_bytes(key, headers) - len(orjson.dumps(body)) - 16
        kept = min(max(0, room) // 4 * 3, ORIGINAL_LIMIT)
        body["original_b64"] = base64.b64encode(value[:kept]).decode("ascii")
        body["original_truncated"] = len(value) > kept
    encoded = orjson.dumps(body)
    if not budget.fits(key, encoded, headers):
        return minimal_dead_letter(record, why.code, topic)
    return Outbound(
        topic, key, encoded, tuple(headers), "dead_letter", source=record, code=why.code
    )


def _source(record: Record) -> dict[str, Any]:
    key, value = record.key, record.value
    source: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": iso_time(record.timestamp),
        "key_b64": None if key is None else base64.b64encode(key[:KEY_LIMIT]).decode("ascii"),
        "value_bytes": 0 if value is None else len(value),
        "value_sha256": None if value is None else hashlib.sha256(value).hexdigest(),
    }
    if key is not None and len(key) > KEY_LIMIT:
        source["key_truncated"] = True
    return source


def _pointer(pointer: str | None) -> str | None:
    if pointer is None or len(pointer) <= _FIELD_LIMIT:
        return pointer
    # Cutting may split a "~0"/"~1" escape: drop a dangling "~" to keep the pointer well-formed.
    return pointer[:_FIELD_LIMIT].rstrip("~")


def _bounded(text: object, limit: int) -> str | None:
    return text if type(text) is str and 0 < len(text) <= limit else None
