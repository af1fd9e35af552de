"""Messages of the decision, escalation and dead-letter contracts (topics/schemas/*.v1).

Every message is keyed by post id (or, where the post id is unknown, by the original key), so
that a redelivery or a replay lands on the same partition with the same key and downstream
consumers can dedupe on it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from modfleet.inference.base import Verdict
from modfleet.ingest.decode import Record, Rejection

if TYPE_CHECKING:
    from modfleet.policy import Judgement, Policy
    from modfleet.settings import Settings

SCHEMA_VERSION = 1
# The dead-letter contract keeps up to 1 MiB of the original; base64 grows it by a third, which
# the topic's max.message.bytes (2 MiB, see the catalogue) and PRODUCER_MAX_REQUEST allow.
_ORIGINAL_LIMIT = 1024 * 1024
PRODUCER_MAX_REQUEST = 2 * 1024 * 1024
RAW_OUTPUT_LIMIT = 32_768  # characters; the schema's maxLength for raw_output
_JSON_HEADERS: tuple[tuple[str, bytes], ...] = (("content-type", b"application/json"),)


@dataclass(frozen=True, slots=True)
class Topics:
    decisions: str
    escalations: str
    dead_letter: str
    shadow_decisions: str = "modfleet.shadow-decisions.v1"

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(
            settings.decisions_topic,
            settings.escalations_topic,
            settings.dead_letter_topic,
            settings.shadow_decisions_topic,
        )


@dataclass(frozen=True, slots=True)
class Outbound:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]
    kind: str  # decision | escalation | dead_letter, for metrics and tests


@dataclass(frozen=True, slots=True)
class Decided:
    """Everything the decision and escalation messages are built from."""

    post_id: str
    tenant: str
    original_text: str  # as received: the reviewer reads all of it, the model maybe a part
    content_hash: str
    truncated: bool
    verdict: Verdict
    scores: Mapping[str, float]
    judgement: Judgement
    from_cache: bool
    produced_at: float | None
    trace_id: str
    headers: Sequence[tuple[str, bytes]]  # trace context carried from the post


def decision_id(post_id: str, policy: Policy) -> str:
    """Deterministic, so that a redelivered post gets the same id and consumers can dedupe."""
    material = "\x1f".join((post_id, policy.id, policy.version)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(material).hexdigest()


def _verdict_fields(d: Decided, policy: Policy, model_id: str) -> dict[str, Any]:
    """What decisions and escalations share: who, what was decided, under which policy."""
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "decision_id": decision_id(d.post_id, policy),
        "post_id": d.post_id,
        "tenant": d.tenant,
        "action": d.judgement.action,
        "scores": _rounded(d.scores),
        "labels": list(d.judgement.labels),
        "policy_id": policy.id,
        "policy_version": policy.version,
        "model_id": model_id,
        "rationale": d.verdict.rationale,
        "post_produced_at": iso_time(d.produced_at),
        "trace_id": d.trace_id,
    }
    if d.verdict.stage is not None:
        body["stage"] = d.verdict.stage  # which cascade stage decided
    return body


def decision_message(d: Decided, policy: Policy, model_id: str, topic: str) -> Outbound:
    body = _verdict_fields(d, policy, model_id)
    body.update(
        from_cache=d.from_cache,
        content_hash=d.content_hash,
        truncated=d.truncated,
        decided_at=iso_time(None),
    )
    return _outbound(topic, d, body, "decision")


def escalation_message(
    d: Decided, policy: Policy, model_id: str, topic: str, reason: str
) -> Outbound:
    body = _verdict_fields(d, policy, model_id)
    body.update(reason=reason, text=d.original_text, escalated_at=iso_time(None))
    if d.verdict.raw_output is not None:
        # The model's answer as given, for the reviewer of an unparseable verdict.
        body["raw_output"] = d.verdict.raw_output[:RAW_OUTPUT_LIMIT]
    return _outbound(topic, d, body, "escalation")


def dead_letter_message(
    record: Record,
    why: Rejection,
    topic: str,
    trace_id: str | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> Outbound:
    value = record.value or b""
    trace = trace_id or trace_id_of(record)
    body = {
        "schema_version": SCHEMA_VERSION,
        "reason": {"code": why.code, "field": why.field, "message": why.message},
        "source": {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": None if record.timestamp is None else iso_time(record.timestamp),
            "key_b64": None if record.key is None else base64.b64encode(record.key).decode(),
        },
        "original_b64": base64.b64encode(value[:_ORIGINAL_LIMIT]).decode("ascii"),
        "original_truncated": len(value) > _ORIGINAL_LIMIT,
        "post_id": why.post_id,
        "tenant": why.tenant,
        "dead_lettered_at": iso_time(None),
        "trace_id": trace,
    }
    key = why.post_id.encode("utf-8", "surrogatepass") if why.post_id else record.key
    headers = headers or carried_headers(record)
    return Outbound(topic, key, orjson.dumps(body), headers, "dead_letter")


def trace_id_of(record: Record) -> str | None:
    """The trace id of a W3C ``traceparent`` header (version-traceid-spanid-flags), if valid."""
    raw = record.header("traceparent")
    if raw is None:
        return None
    parts = raw.decode("ascii", "replace").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and _is_hex(parts[1]) and parts[1] != "0" * 32:
        return parts[1].lower()
    return None


def new_trace_id() -> str:
    return secrets.token_hex(16)


def iso_time(epoch_s: float | None) -> str:
    """RFC 3339 in UTC with milliseconds; ``None`` means now."""
    moment = datetime.now(UTC) if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outbound(topic: str, d: Decided, body: dict[str, Any], kind: str) -> Outbound:
    key = d.post_id.encode("utf-8", "surrogatepass")
    return Outbound(topic, key, orjson.dumps(body), d.headers, kind)


def carried_headers(record: Record) -> tuple[tuple[str, bytes], ...]:
    """Content type plus the post's W3C trace context, so one trace spans every hop."""
    carried = tuple((k, v) for k, v in record.headers if k.lower() in ("traceparent", "tracestate"))
    return _JSON_HEADERS + carried


def _rounded(scores: Mapping[str, float]) -> dict[str, float]:
    return {name: round(score, 6) for name, score in scores.items()}


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)
