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
        return minimal_dead_letter(record, why.code, topic, why.post_id, why.tenant, budget)


def minimal_dead_letter(
    record: Record,
    code: str,
    topic: str,
    post_id: str | None = None,
    tenant: str | None = None,
    budget: Budget = DEFAULT_BUDGET,
) -> Outbound:
    """Coordinates, reason code, the record's key and timestamp and the value's digest: no
    parsing, nothing of unbounded size.

    ``post_id`` and ``tenant``, when the caller knows them (it stands in for a decision or an
    escalation the broker refused), name the post, so that consumers waiting on that post's
    outcomes know it is settled; each is kept only within the post schema's bounds. Keyed as
    every dead letter is (:func:`dead_letter_key`).

    Its size is bounded whatever the record holds: the key is kept to ``KEY_LIMIT`` bytes, the
    post id and tenant to the post schema's bounds, the rest is fixed or the broker's (a topic
    name is at most 249 characters). That is a few KiB, within the least record size the
    settings allow (64 KiB); under a smaller budget the key is cut further to fit."""
    value = record.value
    post_id, tenant = _bounded(post_id, _MAX_POST_ID), _bounded(tenant, _MAX_TENANT)
    key = dead_letter_key(post_id, record.key)
    source: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": iso_time(record.timestamp),
        "key_b64": None,
        "value_bytes": 0 if value is None else len(value),
        "value_sha256": None if value is None else hashlib.sha256(value).hexdigest(),
    }
    body = {
        "schema_version": SCHEMA_VERSION,
        "reason": {
            "code": code,
            "field": None,
            "message": "minimal dead-letter: read the post from its source record",
        },
        "source": source,
        "original_b64": "",
        "original_truncated": bool(value),
        "original_omitted": bool(value),
        "post_id": post_id,
        "tenant": tenant,
        "dead_lettered_at": now_iso(),
        "trace_id": None,
    }
    if record.key is not None:
        # What the rest leaves, less the key's quotes and the key_truncated flag.
        room = budget.value_bytes(key, _JSON_HEADERS) - len(orjson.dumps(body)) - 32
        kept = min(KEY_LIMIT, max(0, room) // 4 * 3)
        source["key_b64"] = base64.b64encode(record.key[:kept]).decode("ascii")
        if len(record.key) > kept:
            source["key_truncated"] = True
    return Outbound(
        topic,
        key,
        orjson.dumps(body),
        _JSON_HEADERS,
        "dead_letter",
        source=record,
        code=code,
    )


def stand_in(message: Outbound, topic: str, budget: Budget) -> Outbound | None:
    """The minimal dead-letter that stands for ``message``, which the broker refused for good
    (none for a shadow decision, or a message that answers no record)."""
    if message.source is None or message.kind == "shadow_decision":
        return None
    # The post it answers, from the message itself (ours, already within the budget): a
    # consumer waiting on that post's decision or escalation then knows it is settled.
    try:
        body = orjson.loads(message.value)
    except orjson.JSONDecodeError:
        body = None
    named = body if type(body) is dict else {}
    return minimal_dead_letter(
        message.source,
        "undeliverable",
        topic,
        named.get("post_id"),
        named.get("tenant"),
        budget,
    )


def dead_letter_key(post_id: str | None, record_key: bytes | None) -> bytes | None:
    """The key of a dead letter: the post id when it could be read, so that a post's dead
    letters go where its decisions do, else the record's own key; cut to a digest when large."""
    key = post_id.encode("utf-8", "surrogatepass") if post_id else record_key
    return bounded_key(key)


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
    key = dead_letter_key(why.post_id, record.key)
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
        return minimal_dead_letter(record, why.code, topic, why.post_id, why.tenant, budget)
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
    if type(text) is not str or not 0 < len(text) <= limit:
        return None
    try:
        text.encode("utf-8")  # a lone surrogate would fail the JSON encoder: left out
    except UnicodeEncodeError:
        return None
    return text
