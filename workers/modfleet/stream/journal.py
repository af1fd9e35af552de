"""The crash journal: what a worker had in hand when it died, kept where its restart finds it.

A post that kills the interpreter (a native crash in a parser, an out-of-memory kill, a hang
that the liveness probe ends) takes its batch with it, unacked, and every worker that reads the
partition next dies on it too. So the offsets of each batch are written here before it is read
and cleared once it is acked. A worker that starts and finds offsets left behind reads them a
post at a time, with nothing else in flight and each post written here while it is read. A post
that was being read alone when the worker died again is dead-lettered unread; its neighbours
are decided.

The file is the pod's own (an emptyDir outlives a container's restart): one ``pwrite`` a batch
before it is read and one after its ack, no network round trip. What a start learns from it is
shared with the other pods through Redis (``stream/crash_share.py``), once, not a batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from modfleet.ingest.decode import Record

log = logging.getLogger(__name__)

_VERSION = 1
# What one file holds stays bounded whatever the posts: spans of batches that outlived their
# worker, oldest forgotten first (a forgotten one is read whole again: one more restart, no loss).
MAX_SUSPECTS = 256
MAX_CULPRITS = 64
# Past anything a journal grows to (about 300 bytes a span: the caps' 320 spans, and the
# batches in hand, at most 64 of a span a partition), a file is not one (a device, a file of
# something else) and is not read further.
_MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Span:
    """Offsets ``first`` to ``last`` (both read) of one topic partition."""

    topic: str
    partition: int
    first: int
    last: int

    def meets(self, other: Span) -> bool:
        """Whether the two share an offset."""
        return (
            self.first <= other.last
            and other.first <= self.last
            and self.partition == other.partition
            and self.topic == other.topic
        )

    def without(self, done: Span) -> list[Span]:
        """What of this span ``done`` does not cover."""
        if done.topic != self.topic or done.partition != self.partition:
            return [self]
        if done.last < self.first or done.first > self.last:
            return [self]
        left = [Span(self.topic, self.partition, self.first, done.first - 1)]
        right = [Span(self.topic, self.partition, done.last + 1, self.last)]
        return (left if done.first > self.first else []) + (right if done.last < self.last else [])


@dataclass(frozen=True, slots=True)
class Culprit:
    """A post that was being read alone when its worker died: the record at that offset, with
    those bytes (a topic recreated under the same name has other posts at the same offsets)."""

    topic: str
    partition: int
    offset: int
    digest: str

    @classmethod
    def of(cls, record: Record) -> Culprit:
        digest = hashlib.sha256(record.value or b"").hexdigest()[:32]
        return cls(record.topic, record.partition, record.offset, digest)


def spans_of(records: Sequence[Record]) -> tuple[Span, ...]:
    """One span a topic partition, from its first offset in ``records`` to its last."""
    bounds: dict[tuple[str, int], list[int]] = {}
    for record in records:
        found = bounds.get((record.topic, record.partition))
        if found is None:
            bounds[(record.topic, record.partition)] = [record.offset, record.offset]
        elif record.offset < found[0]:
            found[0] = record.offset
        elif record.offset > found[1]:
            found[1] = record.offset
    return tuple(Span(t, p, lo, hi) for (t, p), (lo, hi) in bounds.items())


@dataclass(frozen=True, slots=True)
class Learned:
    """What a worker's deaths taught: offsets to read a post at a time, posts not to read."""

    suspects: tuple[Span, ...] = ()
    culprits: tuple[Culprit, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.suspects or self.culprits)


class CrashJournal:
    """The journal at ``path``; with None it keeps nothing and suspects nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.suspects: list[Span] = []
        self.culprits: list[Culprit] = []
        self._in_hand: dict[int, tuple[Span, ...]] = {}
        self._alone: Culprit | None = None
        self._next = 0
        self._fd: int | None = None
        self._stopping = False
        self._written = 0
        self.learned = Learned()  # from this worker's own last run, once open
        if path is not None:
            self._open(path)

    def suspected(self, records: Sequence[Record]) -> bool:
        """Whether a worker died with any of ``records`` in hand: read them a post at a time."""
        if not self.suspects:
            return False
        # Span against span: a batch holds a span a partition, whatever its number of posts.
        return any(s.meets(t) for s in spans_of(records) for t in self.suspects)

    def culprit(self, record: Record) -> bool:
        """Whether a worker died reading ``record`` alone: it must not be read again."""
        # The digest (of up to max_post_bytes) only where a culprit's place matches: each post
        # of a batch read alone is hashed once, for its mark, not a second time here.
        place = (record.topic, record.partition, record.offset)
        if not any((c.topic, c.partition, c.offset) == place for c in self.culprits):
            return False
        return Culprit.of(record) in self.culprits

    def begin(self, records: Sequence[Record]) -> int:
        """Note ``records`` in hand before any of them is read; the mark for :meth:`done`."""
        if self._fd is None:
            return -1
        mark = self._next
        self._next += 1
        self._in_hand[mark] = spans_of(records)
        self._save()
        return mark

    def done(self, mark: int) -> None:
        """The batch is acked: its offsets are no longer in hand, nor suspect any more."""
        spans = self._in_hand.pop(mark, None)
        if spans is None:
            return
        for span in spans:
            self.suspects = [rest for s in self.suspects for rest in s.without(span)]
            self.culprits = [c for c in self.culprits if not _covers(span, c)]
        self._save()

    def stopping(self) -> None:
        """The worker stops by choice (SIGTERM): an exit from here on, past the shutdown grace
        too, is no post's doing. What is in hand stays suspect; no post read alone is blamed."""
        self._stopping = True
        if self._alone is not None:
            self._alone = None
            self._save()

    @contextlib.contextmanager
    def alone(self, record: Record) -> Iterator[None]:
        """While ``record`` is read by itself: a death now is that record's doing."""
        if self._fd is None or self._stopping:
            yield
            return
        self._alone = Culprit.of(record)
        self._save()
        try:
            yield
        finally:
            if self._alone is not None:
                self._alone = None
                self._save()

    def merge(self, learned: Learned) -> None:
        """Take in what other workers learned (shared through Redis), as if it were ours."""
        suspects = [s for s in learned.suspects if s not in self.suspects]
        culprits = [c for c in learned.culprits if c not in self.culprits]
        if suspects or culprits:
            self.suspects = [*self.suspects, *suspects][-MAX_SUSPECTS:]
            self.culprits = [*self.culprits, *culprits][-MAX_CULPRITS:]
            self._save()

    def _open(self, path: Path) -> None:
        left = _load(path)
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.error("the crash journal %s cannot be opened (%s): running without it", path, exc)
            return
        self._learn(left)
        # At start only: from here on, each write covers the last. A file that cannot be cut (a
        # device) shows what it is at the first write.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        self._save()

    def _learn(self, left: _Left) -> None:
        """Take in what the last run of this worker left: the batches in hand when it died."""
        culprits = list(left.culprits)
        blamed: tuple[Culprit, ...] = ()
        if left.alone is not None and len(left.in_hand) == 1:
            culprits.append(left.alone)
            blamed = (left.alone,)
            log.error(
                "this worker's last run died while it read %s[%d]@%d alone: that post is "
                "dead-lettered unread (internal_error)",
                left.alone.topic,
                left.alone.partition,
                left.alone.offset,
            )
        died_with = [span for batch in left.in_hand for span in batch]
        if died_with:
            log.warning(
                "this worker's last run died with offsets in hand (%s): they are read a post "
                "at a time, with nothing else in flight",
                ", ".join(f"{s.topic}[{s.partition}]@{s.first}-{s.last}" for s in died_with[:8]),
            )
        self.suspects = list(dict.fromkeys([*left.suspects, *died_with]))[-MAX_SUSPECTS:]
        self.culprits = culprits[-MAX_CULPRITS:]
        self.learned = Learned(tuple(died_with), blamed)

    def _save(self) -> None:
        if self._fd is None:
            return
        state = {
            "version": _VERSION,
            "in_hand": [[span_row(s) for s in spans] for spans in self._in_hand.values()],
            "alone": culprit_row(self._alone) if self._alone else None,
            "suspects": [span_row(s) for s in self.suspects],
            "culprits": [culprit_row(c) for c in self.culprits],
        }
        data = orjson.dumps(state)
        # One write at offset 0, padded over what the last one left: the file is whole after
        # any death, with no moment between a truncate and a write (trailing blanks are JSON).
        padded = data.ljust(self._written)
        try:
            if os.pwrite(self._fd, padded, 0) != len(padded):
                # A short write leaves a file no start could read: say so now, not at the death.
                raise OSError(f"wrote part of {len(padded)} bytes")
        except OSError as exc:
            log.error(
                "the crash journal %s cannot be written (%s): running without it", self.path, exc
            )
            os.close(self._fd)
            self._fd = None
            return
        self._written = len(padded)


@dataclass(frozen=True, slots=True)
class _Left:
    """What a journal file held when this process started."""

    in_hand: tuple[tuple[Span, ...], ...] = ()
    alone: Culprit | None = None
    suspects: tuple[Span, ...] = ()
    culprits: tuple[Culprit, ...] = ()


def _load(path: Path) -> _Left:
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return _Left()
    except OSError as exc:
        log.error("the crash journal %s cannot be read (%s): starting afresh", path, exc)
        return _Left()
    if not raw.strip():
        return _Left()
    if len(raw) > _MAX_FILE_BYTES:
        log.error("the crash journal %s is over %d bytes: starting afresh", path, _MAX_FILE_BYTES)
        return _Left()
    try:
        return _parse(orjson.loads(raw))
    except (ValueError, TypeError) as exc:  # orjson's JSONDecodeError is a ValueError
        log.error("the crash journal %s is unreadable (%s): starting afresh", path, exc)
        return _Left()


def _parse(state: object) -> _Left:
    if not isinstance(state, dict) or state.get("version") != _VERSION:
        raise ValueError(f"not a version {_VERSION} journal")
    alone = state.get("alone")
    return _Left(
        in_hand=tuple(tuple(read_span(s) for s in _rows(b)) for b in _rows(state.get("in_hand"))),
        alone=None if alone is None else read_culprit(alone),
        suspects=tuple(read_span(s) for s in _rows(state.get("suspects"))),
        culprits=tuple(read_culprit(c) for c in _rows(state.get("culprits"))),
    )


def _rows(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"{type(value).__name__} where a list was expected")
    return value


def read_span(row: object) -> Span:
    match row:
        case [str(topic), int(partition), int(first), int(last)]:
            return Span(topic, partition, first, last)
    raise TypeError(f"not a span of offsets: {row!r}"[:200])


def read_culprit(row: object) -> Culprit:
    match row:
        case [str(topic), int(partition), int(offset), str(digest)]:
            return Culprit(topic, partition, offset, digest)
    raise TypeError(f"not a post's place: {row!r}"[:200])


def span_row(span: Span) -> list[object]:
    return [span.topic, span.partition, span.first, span.last]


def culprit_row(culprit: Culprit) -> list[object]:
    return [culprit.topic, culprit.partition, culprit.offset, culprit.digest]


def _covers(span: Span, culprit: Culprit) -> bool:
    return (
        span.topic == culprit.topic
        and span.partition == culprit.partition
        and span.first <= culprit.offset <= span.last
    )
