"""Messages of the decision, escalation and dead-letter contracts (topics/schemas/*.v1).

Every message is keyed by post id (or, where the post id is unknown, by the original key), so
that a redelivery or a replay lands on the same partition with the same key and downstream
consumers can dedupe on it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from modfleet.carrier import carrier
from modfleet.emit.budget import (
    DEFAULT_BUDGET,
    TRACEPARENT_LENGTH,
    TRACESTATE_LIMIT,
    Budget,
    cut_utf8,
    fair_shares,
    json_prefix,
)
from modfleet.inference.base import Verdict
from modfleet.ingest.decode import Record

if TYPE_CHECKING:
    from modfleet.policy import Judgement, Policy
    from modfleet.settings import Settings

SCHEMA_VERSION = 1
RAW_OUTPUT_LIMIT = 32_768  # characters; the schema's maxLength for raw_output
RATIONALE_LIMIT = 8_192  # characters of a model's rationale kept on a decision
_JSON_HEADERS: tuple[tuple[str, bytes], ...] = (("content-type", b"application/json"),)


@carrier
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


@carrier
class Outbound:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]
    kind: str  # decision | escalation | dead_letter | shadow_decision
    source: Record | None = None  # the post record it answers, for a fallback dead-letter
    code: str | None = None  # dead-letter reason code, or escalation reason
    action: str | None = None
    labels: tuple[str, ...] = ()


@carrier
class Decided:
    """Everything the decision and escalation messages are built from."""

    post_id: str
    tenant: str
    original_text: str  # as received: the reviewer reads all of it, the model maybe a part
    content_hash: str
    truncated: bool
    verdict: Verdict
    scores: dict[str, float]  # by category, to the pack's places (Verdict.policy_scores)
    judgement: Judgement
    from_cache: bool
    produced_at: float | None
    trace_id: str
    headers: Sequence[tuple[str, bytes]]  # trace context carried from the post
    source: Record | None = None  # the post record, for the escalation's reference


def decision_id(post_id: str, tenant: str, policy: Policy, content_hash: str) -> str:
    """Deterministic, so that a redelivered post gets the same id and consumers can dedupe; the
    pack's digest is part of it, so two packs that share id@version never share an id; the
    tenant, since a post id is unique only within its tenant: two tenants' post "1" under one
    pack are two decisions, and neither may be deduped or reviewed as the other; and the text's
    hash, so that an edit is a new decision, never deduped as the harmless first version."""
    pack_part = _pack_part(policy.id, policy.version, policy.digest)
    return _decision_id(post_id, tenant, pack_part, content_hash)


def _decision_id(post_id: str, tenant: str, pack_part: bytes, content_hash: str) -> str:
    material = b"%s%s\x1f%s\x1f%s" % (
        post_id.encode("utf-8", "surrogatepass"),
        pack_part,
        tenant.encode("utf-8", "surrogatepass"),
        content_hash.encode("ascii"),
    )
    return hashlib.sha256(material).hexdigest()


@functools.lru_cache(maxsize=256)
def _pack_part(pack_id: str, version: str, digest: str) -> bytes:
    """What follows the post id in a decision id: the same for every post under one pack."""
    return "".join(f"\x1f{part}" for part in (pack_id, version, digest)).encode(
        "utf-8", "surrogatepass"
    )


@carrier
class PackFields:
    """What every message under one pack and model shares, worked out once: the per-post path
    holds one per pack rather than looking the pack's fields up for every message."""

    pack_id: str
    version: str
    digest: str
    model_id: str
    id_part: bytes  # what follows the post id in a decision id

    @classmethod
    def of(cls, policy: Policy, model_id: str) -> PackFields:
        return _pack_fields(policy.id, policy.version, policy.digest, model_id)


@functools.lru_cache(maxsize=256)
def _pack_fields(pack_id: str, version: str, digest: str, model_id: str) -> PackFields:
    return PackFields(pack_id, version, digest, model_id, _pack_part(pack_id, version, digest))


def _verdict_fields(d: Decided, pack: PackFields) -> dict[str, Any]:
    """What decisions and escalations share: who, what was decided, under which policy."""
    verdict = d.verdict
    # The fallback that scored while the pack's model was down, when one did.
    scorer = verdict.model_id or pack.model_id
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "policy_id": pack.pack_id,
        "policy_version": pack.version,
        "policy_digest": pack.digest,
        "model_id": scorer,
        "decision_id": _decision_id(d.post_id, d.tenant, pack.id_part, d.content_hash),
        "post_id": d.post_id,
        "tenant": d.tenant,
        "action": d.judgement.action,
        "scores": d.scores,
        "labels": d.judgement.labels,
        "rationale": _clip(verdict.rationale, RATIONALE_LIMIT),
        "post_produced_at": iso_time(d.produced_at),
        "trace_id": d.trace_id,
    }
    if verdict.rationale is not None and len(verdict.rationale) > RATIONALE_LIMIT:
        body["rationale_truncated"] = True
    if verdict.stage is not None:
        body["stage"] = verdict.stage  # which cascade stage decided
    if verdict.fallback_from is not None:
        body["fallback_from"] = verdict.fallback_from
    return body


def decision_message(d: Decided, pack: PackFields, topic: str, kind: str = "decision") -> Outbound:
    """The decision on one post under ``pack`` (``PackFields.of(policy, model_id)``)."""
    body = _verdict_fields(d, pack)
    body["from_cache"] = d.from_cache
    body["content_hash"] = d.content_hash
    body["truncated"] = d.truncated
    body["decided_at"] = now_iso()
    return _outbound(topic, d, orjson.dumps(body), kind)


def escalation_message(
    d: Decided,
    pack: PackFields,
    topic: str,
    reason: str,
    budget: Budget = DEFAULT_BUDGET,
) -> Outbound:
    """The post's text for the reviewer, cut to the budget with a reference to the whole post."""
    body = _verdict_fields(d, pack)
    text, cut = cut_utf8(d.original_text, budget.escalation_text_bytes)
    body.update(reason=reason, text=text, text_truncated=cut, escalated_at=now_iso())
    if d.source is not None:
        body["source"] = source_reference(d.source, d.content_hash)
    if d.verdict.raw_output is not None:
        # The model's answer as given, for the reviewer of an unparseable verdict.
        body["raw_output"] = d.verdict.raw_output[:RAW_OUTPUT_LIMIT]
        if len(d.verdict.raw_output) > RAW_OUTPUT_LIMIT:
            body["raw_output_truncated"] = True
    room = budget.value_bytes(_key(d.post_id), d.headers)
    value = orjson.dumps(body)
    if len(value) > room:
        value = _fitted(body, len(value), room)
    return _outbound(topic, d, value, "escalation", code=reason)


def escalation_reason(verdict: Verdict) -> str:
    """Why a person reviews the post: the model was down, its answer unreadable, or a
    threshold's action."""
    if verdict.model_down:
        return "model_down"
    return "unparseable_verdict" if verdict.unparseable else "policy_threshold"


# The fields whose size the poster or the model chose: everything else is bounded by the
# schema, the settings or the pack.
_UNBOUNDED = ("text", "raw_output", "rationale")


def _fitted(body: dict[str, Any], size: int, room: int) -> bytes:
    """The escalation cut to ``room`` bytes: the post's text, the model's answer and its
    rationale share what the rest leaves, each a fair share, so that no one of them (an answer
    the post steered into pages of prose) crowds the others out. Measured as JSON, where a
    control character takes six bytes."""
    names = [name for name in _UNBOUNDED if type(body.get(name)) is str]
    encoded = [orjson.dumps(body[name]) for name in names]
    sizes = [len(json) - 2 for json in encoded]
    # The cut text's flag turns false to true: a byte shorter. The model's words' flags are
    # absent until they are cut: room is kept for each that may yet be added.
    flags = sum(len(_FLAG.format(_flag(n))) for n in names if _flag(n) not in body)
    shares = fair_shares(sizes, room - (size - sum(sizes)) - flags)
    for name, json, wanted, share in zip(names, encoded, sizes, shares, strict=True):
        if share < wanted:
            body[name] = json_prefix(json, share)
            body[_flag(name)] = True
    return orjson.dumps(body)


_FLAG = ',"{}":true'


def _flag(name: str) -> str:
    return f"{name}_truncated"


def source_reference(record: Record, content_hash: str) -> dict[str, Any]:
    """Where the whole post can be read back: a review tool fetches the record itself."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "content_hash": content_hash,
    }


def trace_id_of(record: Record) -> str | None:
    """The trace id of a W3C ``traceparent`` header (version-traceid-spanid-flags), if valid."""
    return _trace_id(record.header("traceparent"))


# W3C Trace Context, version-traceid-parentid-flags in lowercase hex: version ff and all-zero ids
# are invalid. Checked whole, as every output carries the header on.
_TRACEPARENT = re.compile(
    rb"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
)
# tracestate's members are printable ASCII (its grammar is narrower still): no CR, LF or NUL.
_TRACESTATE = re.compile(rb"[\x20-\x7e]*")


def _trace_id(parent: bytes | None) -> str | None:
    if parent is None or len(parent) != TRACEPARENT_LENGTH or not _TRACEPARENT.fullmatch(parent):
        return None
    return parent[3:35].decode("ascii")


def new_trace_id() -> str:
    # As OpenTelemetry's own id generator does: a trace id needs to be unique, not secret, and
    # a system call for entropy on every post would cost more than the rest of its trace work.
    # The random module's own generator: seeded from the OS, and reseeded in a forked child.
    return f"{random.getrandbits(128) or 1:032x}"


def iso_time(epoch_s: float | None) -> str | None:
    """RFC 3339 in UTC with milliseconds; None for no time or one RFC 3339 cannot write
    (a record's timestamp is the producer's to choose: year 10000 or before year 1)."""
    if epoch_s is None:
        return None
    last_s, last_text = _STAMPED[0]
    if epoch_s == last_s:  # a batch's posts often share their producer's millisecond
        return last_text
    text = _iso_time(epoch_s)
    _STAMPED[0] = (epoch_s, text)
    return text


_STAMPED: list[tuple[float, str | None]] = [(math.nan, None)]  # NaN equals nothing


def _iso_time(epoch_s: float) -> str | None:
    if 0.0 <= epoch_s < _FAST_UNTIL_S:
        # Every post has a stamp of its own, so formatting one is per-post work: the date and
        # time of day are formatted once per second, the milliseconds appended. The rounding
        # is datetime.fromtimestamp's (the fraction's microseconds, half to even).
        whole = int(epoch_s)
        micros = round((epoch_s - whole) * 1e6)
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        return f"{_second(whole)}.{micros // 1000:03d}Z"
    try:
        moment = datetime.fromtimestamp(epoch_s, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if moment.year < 1:  # pragma: no cover - fromtimestamp refuses these itself
        return None
    return _rfc3339(moment)


_FAST_UNTIL_S = float(2**33)  # the year 2242; a double still holds microseconds there


@functools.lru_cache(maxsize=512)
def _second(whole_s: int) -> str:
    return datetime.fromtimestamp(whole_s, UTC).isoformat(timespec="seconds")[:19]


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_NOW: list[tuple[int, str]] = [(0, "")]


def now_iso() -> str:
    """Now in RFC 3339, formatted once per millisecond: a batch's messages share it."""
    ms = time.time_ns() // 1_000_000
    last_ms, text = _NOW[0]
    if ms != last_ms:
        text = _rfc3339(datetime.fromtimestamp(ms / 1000, UTC))
        _NOW[0] = (ms, text)
    return text


def _outbound(topic: str, d: Decided, value: bytes, kind: str, code: str | None = None) -> Outbound:
    judgement = d.judgement
    # Positional: this runs for every message, and keyword arguments cost a third more here.
    return Outbound(
        topic,
        _key(d.post_id),
        value,
        d.headers,
        kind,
        d.source,
        code,
        judgement.action,
        judgement.labels,
    )


def _key(post_id: str) -> bytes:
    return post_id.encode("utf-8", "surrogatepass")


def _clip(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit]


def carried_headers(record: Record) -> tuple[tuple[str, bytes], ...]:
    """Content type plus the post's W3C trace context, so one trace spans every hop."""
    return trace_context(record)[1]


def trace_context(record: Record) -> tuple[str | None, tuple[tuple[str, bytes], ...]]:
    """The post's trace id, if its ``traceparent`` is valid, and the headers its outputs carry:
    content type plus that trace context, so one trace spans every hop. One pass over the
    headers, as each post's outputs need both.

    Only well-formed, bounded trace headers travel on: a post's headers are its producer's to
    choose, and a megabyte of "tracestate" must not ride on every output."""
    parent = state = None
    for name, value in record.headers:
        lowered = name.lower()
        # The first of each name counts, as Record.header reads it.
        if lowered == "traceparent":
            parent = value if parent is None else parent
        elif lowered == "tracestate":
            state = value if state is None else state
    trace_id = _trace_id(parent)
    if trace_id is None or parent is None:
        return None, _JSON_HEADERS
    if state is not None and len(state) <= TRACESTATE_LIMIT and _TRACESTATE.fullmatch(state):
        return trace_id, (*_JSON_HEADERS, ("traceparent", parent), ("tracestate", state))
    return trace_id, (*_JSON_HEADERS, ("traceparent", parent))
