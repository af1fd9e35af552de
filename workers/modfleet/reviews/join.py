"""Reviews joined with the decisions they judge, by decision_id, in bounded memory.

The join holds a compact copy of each decision (what agreement needs, never the text) in an
insertion-ordered map with a maximum entry count and an age limit: the oldest decisions go first,
so memory is bounded whatever the traffic. A review that arrives before its decision (the two
topics are read side by side) waits in a smaller bounded map; one that falls out of it unjoined is
``unknown``.

Every review is attacker-chosen input as far as this module is concerned: it is checked against
the review schema, must name the decision's post and tenant, and counts once per decision.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from modfleet.contracts.schemas import MessageType, fast_violation
from modfleet.kafka import unread

Result = Literal["joined", "pending", "unknown", "duplicate", "mismatch", "invalid", "not_final"]
RESULTS: tuple[Result, ...] = (
    "joined",
    "pending",
    "unknown",
    "duplicate",
    "mismatch",
    "invalid",
    "not_final",
)
_MAX_INTERNED = 100_000
# Reviews waiting for their decision are the one thing an outsider sizes (verdict names, post
# ids), so they get a byte budget besides their count.
PENDING_BYTES = 64 * 2**20
NONE = "none"  # the label value of a field the decision did not carry (stage, digest)


@dataclass(frozen=True, slots=True)
class Decided:
    """What agreement needs of a decision; strings shared between decisions are interned."""

    tenant: str
    post_id: str
    action: str
    labels: frozenset[str]
    categories: frozenset[str]
    digest: str
    model: str
    stage: str
    at: float  # seconds, the clock the join is driven by (record time or wall time)
    reviewed: bool = False


@dataclass(frozen=True, slots=True)
class Review:
    decision_id: str
    post_id: str
    tenant: str
    action: str
    verdicts: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class Joined:
    decision: Decided
    review: Review

    @property
    def upheld(self) -> bool:
        """The reviewer kept the decision: same action, or, for an escalation, found a problem."""
        if self.decision.action == "escalate":
            return self.review.action != "allow"
        return self.review.action == self.decision.action

    def verdicts(self) -> Iterator[tuple[str, bool, bool]]:
        """(category, flagged by the model, violates per the reviewer) for each judged category
        of the decision's policy; categories the policy lacks are ignored."""
        for category, violates in sorted(self.review.verdicts.items()):
            if category in self.decision.categories:
                yield category, category in self.decision.labels, violates


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    joined: Joined | None = None
    why: str = ""


class Rejected(ValueError):
    """A record that is not a valid message of its type; ``str`` says what and where.

    ``code`` and ``field`` are the dead-letter reason's (``not_json``/``schema_invalid``, a JSON
    pointer or None)."""

    def __init__(self, message: str, code: str = "schema_invalid", field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


def parse_record(message_type: MessageType, record: Any) -> dict[str, Any]:
    """``parse`` of a consumed record's value, or Rejected with the reason it was not read
    (``modfleet.kafka.unread``: a batch that would inflate too far)."""
    why = unread(record)
    if why is not None:
        raise Rejected(why.message, why.code, why.field)
    return parse(message_type, record.value)


def parse(message_type: MessageType, value: bytes | None) -> dict[str, Any]:
    """One record's value as a schema-valid message, or Rejected naming the offending field."""
    if value is None:
        raise Rejected("record has no value (a tombstone?)", "not_json")
    try:
        message = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"not JSON: {exc}", "not_json") from exc
    violation = fast_violation(message_type, message)
    if violation is not None:
        where = violation.pointer or "/"
        raise Rejected(
            f"{message_type}.v1 invalid at {where}: {violation.message}", field=violation.pointer
        )
    if not isinstance(message, dict):  # the schema says object; this tells mypy
        raise Rejected("not a JSON object", field="")
    return message


_Waiting = tuple[bytes, str, str]
# Where a waiting review was read, (partition, offset), so that the live join knows which
# reviews a restart must read again; None where nobody asks (the report's bounded read).
Origin = tuple[int, int] | None


# What every waiting review holds besides its strings and verdicts, in CPython's sizes rounded
# to its allocator's 16-byte blocks: the Review, the map's entry (hash slot, index and
# ordered-dict node, measured at up to 144 just after the table grows), the (time, review,
# origin) triple and its float, the key tuple and its bytes, the origin pair and its offset.
_HELD = 80 + 144 + 64 + 32 + 64 + 80 + 64 + 32


def _cost(review: Review) -> int:
    """What a waiting review holds in memory, in bytes.

    Strings are costed as stored: CPython keeps a string in 1, 2 or 4 bytes a character, by its
    widest character, so a count of characters would let 4-byte names hold four times the
    budget. Verdict values are the shared True and False."""
    strings = (review.decision_id, review.post_id, review.tenant, review.action, *review.verdicts)
    return _HELD + _size(review.verdicts) + sum(_size(text) for text in strings)


def _size(thing: object) -> int:
    size = sys.getsizeof(thing)
    if size > 512:  # past what pymalloc serves: the system allocator's header
        size += 16
    return (size + 15) // 16 * 16


class Join:
    """Decisions held for their reviews: at most ``max_decisions``, none older than ``ttl_s``."""

    def __init__(self, max_decisions: int, ttl_s: float) -> None:
        self.max_decisions = max_decisions
        self.ttl_s = ttl_s
        self.max_pending = max(100, max_decisions // 10)
        self._decisions: collections.OrderedDict[bytes, Decided] = collections.OrderedDict()
        # Waiting reviews by (decision id, tenant, post id): the id alone can be copied from
        # any decision, so a forgery waiting under it must not shut the honest review out.
        # Oldest first, and only ever left from the front unjoined: the live join's restarts
        # rely on it (reviews.resume).
        self._pending: collections.OrderedDict[_Waiting, tuple[float, Review, Origin]] = (
            collections.OrderedDict()
        )
        self._interned: dict[Any, Any] = {}
        self._pending_bytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._decisions)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add_decision(self, message: Mapping[str, Any], now: float) -> list[Outcome]:
        """Hold a (schema-valid) decision. Returns the join of a review that waited for it, and
        the reviews that fell out of the waiting map meanwhile (unknown)."""
        key = bytes.fromhex(message["decision_id"])
        if key in self._decisions:  # a redelivered decision: same id, same content
            return []
        scores = message["scores"]
        decided = Decided(
            tenant=self._intern(message["tenant"]),
            post_id=message["post_id"],
            action=self._intern(message["action"]),
            labels=self._intern(frozenset(message["labels"])),
            categories=self._intern(frozenset(scores)),
            digest=self._intern(message.get("policy_digest") or NONE),
            model=self._intern(message["model_id"]),
            stage=self._intern(message.get("stage") or NONE),
            at=now,
        )
        self._decisions[key] = decided
        gone = self._evict(now)
        waiting = self._pending.pop((key, decided.tenant, decided.post_id), None)
        if waiting is None:
            return gone
        self._pending_bytes -= _cost(waiting[1])
        return [self._match(key, decided, waiting[1]), *gone]

    def add_review(
        self, message: Mapping[str, Any], now: float, origin: Origin = None
    ) -> list[Outcome]:
        """Join a (schema-valid) review with its decision, or hold it until the decision comes.
        The first outcome is this review's; any others are waiting reviews that fell out."""
        review = Review(
            decision_id=message["decision_id"],
            post_id=message["post_id"],
            tenant=message["tenant"],
            action=message["action"],
            verdicts=dict(message["verdicts"]),
        )
        if review.action == "escalate":
            return [Outcome("not_final", why="passed on to another reviewer")]
        key = bytes.fromhex(review.decision_id)
        decided = self._decisions.get(key)
        if decided is not None:
            return [self._match(key, decided, review)]
        waiting = (key, review.tenant, review.post_id)
        if waiting in self._pending:
            return [Outcome("duplicate", why="a review of this decision is already waiting")]
        self._pending[waiting] = (now, review, origin)
        self._pending_bytes += _cost(review)
        return [Outcome("pending"), *self._evict(now)]

    def restore(self, message: Mapping[str, Any]) -> None:
        """Mark the decision of a review counted before a restart, counting nothing now."""
        key = bytes.fromhex(message["decision_id"])
        decided = self._decisions.get(key)
        if decided is None or message["action"] == "escalate":
            return
        if (decided.tenant, decided.post_id) == (message["tenant"], message["post_id"]):
            self._decisions[key] = replace(decided, reviewed=True)

    def oldest_waiting(self) -> dict[int, int]:
        """The offset of the oldest review still waiting, by partition."""
        oldest: dict[int, int] = {}
        for _, _, origin in self._pending.values():
            if origin is not None:
                partition, offset = origin
                oldest.setdefault(partition, offset)  # the map is oldest first
        return oldest

    def expire(self, now: float) -> list[Outcome]:
        """Drop what is past its age; reviews that never met their decision come back unknown."""
        return self._evict(now)

    def flush(self) -> list[Outcome]:
        """Every review still waiting, as unknown (the end of a bounded read)."""
        gone = [self._unknown(review) for _, review, _ in self._pending.values()]
        self._pending.clear()
        self._pending_bytes = 0
        return gone

    def _match(self, key: bytes, decided: Decided, review: Review) -> Outcome:
        if review.tenant != decided.tenant or review.post_id != decided.post_id:
            return Outcome("mismatch", why="post_id or tenant differs from the decision's")
        if decided.reviewed:
            return Outcome("duplicate", why="the decision was reviewed before")
        marked = replace(decided, reviewed=True)
        self._decisions[key] = marked  # keeps its place in the age order
        return Outcome("joined", Joined(marked, review))

    def _evict(self, now: float) -> list[Outcome]:
        horizon = now - self.ttl_s
        decisions = self._decisions
        while decisions and (
            len(decisions) > self.max_decisions or next(iter(decisions.values())).at < horizon
        ):
            decisions.popitem(last=False)
            self.evicted += 1
        gone: list[Outcome] = []
        pending = self._pending
        while pending and (
            len(pending) > self.max_pending
            or self._pending_bytes > PENDING_BYTES
            or next(iter(pending.values()))[0] < horizon
        ):
            review = pending.popitem(last=False)[1][1]
            self._pending_bytes -= _cost(review)
            gone.append(self._unknown(review))
        return gone

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @staticmethod
    def _unknown(review: Review) -> Outcome:
        return Outcome("unknown", why=f"no decision {review.decision_id[:12]}… was seen in time")

    def _intern(self, value: Any) -> Any:
        if len(self._interned) >= _MAX_INTERNED:  # sharing is an economy, not a must
            return self._interned.get(value, value)
        return self._interned.setdefault(value, value)
