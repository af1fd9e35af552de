"""Which outputs belong to the posts this replay sent, and whether all of them have one yet.

A sent post is known by its record key (the post id) and the produce timestamp the replay gave
it. Decisions and escalations carry both (``post_id``, ``post_produced_at``); dead-letters carry
the original record's key and timestamp under ``source``. Matching on both rather than the post
id alone keeps decisions of earlier replays of the same posts, still on the output topics, out of
this replay's report, and works for posts without a usable id (dead-lettered, keyed by nothing).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
from datetime import datetime
from typing import IO, Any

import orjson
from aiokafka import TopicPartition

from modfleet.emit.budget import KEY_LIMIT
from modfleet.errors import FatalError
from modfleet.kafka import consumer
from modfleet.replay.io import Outcomes
from modfleet.settings import Settings

Key = tuple[bytes | None, int]  # (record key, produce timestamp in ms)


def epoch_ms(rfc3339: Any) -> int | None:
    if not isinstance(rfc3339, str):
        return None
    try:
        return round(datetime.fromisoformat(rfc3339).timestamp() * 1000)
    except ValueError:
        return None


class Tracker:
    """Sent posts still waiting for an outcome, and the outcomes that matched them."""

    def __init__(self, posts_topic: str, capture: IO[bytes] | None = None) -> None:
        self.posts_topic = posts_topic
        self.outcomes = Outcomes()
        self.latencies_ms: list[int] = []
        self.duplicates = 0  # redelivered outputs (at-least-once), counted once
        self.unsettled = 0
        self._waiting: collections.Counter[Key] = collections.Counter()
        self._sent: set[Key] = set()
        # Keys longer than a dead letter keeps, by the prefix it keeps: its only way back.
        self._long: dict[Key, list[Key]] = {}
        self._escalated: set[tuple[str, Key | None]] = set()
        self._capture = capture
        self._sending = True
        self.all_settled = asyncio.Event()

    def expect(self, key: Key) -> None:
        self._waiting[key] += 1
        self._sent.add(key)
        self.unsettled += 1
        record_key, ts = key
        if record_key is not None and len(record_key) > KEY_LIMIT:
            self._long.setdefault((record_key[:KEY_LIMIT], ts), []).append(key)

    def forget(self, key: Key) -> None:
        """A post the broker refused: no outcome will come."""
        if self._waiting[key] > 0:
            self._settle(key)

    def sending_done(self) -> None:
        self._sending = False
        self._check_settled()

    def add(self, kind: str, value: bytes) -> None:
        try:
            message = orjson.loads(value)
        except orjson.JSONDecodeError:
            return  # not ours to judge: some other producer's record
        if not isinstance(message, dict):
            return
        if kind == "decisions":
            self._decision(message)
        elif kind == "escalations":
            self._escalation(message)
        else:
            self._dead_letter(message)

    def _decision(self, message: dict[str, Any]) -> None:
        key = _post_key(message)
        if not self._claim(key):
            return
        self.outcomes.decisions.append(message)
        decided = epoch_ms(message.get("decided_at"))
        if key is not None and decided is not None:
            self.latencies_ms.append(decided - key[1])
        if self._capture is not None:
            self._capture.write(orjson.dumps(message) + b"\n")

    def _escalation(self, message: dict[str, Any]) -> None:
        key = _post_key(message)
        seen = (str(message.get("decision_id")), key)
        if key in self._sent and seen not in self._escalated:
            self._escalated.add(seen)
            self.outcomes.escalations.append(message)

    def _dead_letter(self, message: dict[str, Any]) -> None:
        source = message.get("source")
        if not isinstance(source, dict) or source.get("topic") != self.posts_topic:
            return
        ts = epoch_ms(source.get("timestamp"))
        try:
            raw = source.get("key_b64")
            record_key = None if raw is None else base64.b64decode(raw, validate=True)
        except (binascii.Error, TypeError):
            return
        if ts is None:
            return
        key: Key | None = (record_key, ts)
        if source.get("key_truncated") is True:
            key = self._by_prefix((record_key, ts))
        if self._claim(key):
            self.outcomes.dead_letters.append(message)

    def _by_prefix(self, cut: Key) -> Key | None:
        """The long key a dead letter kept only the start of: one still waiting, if any (two
        such posts sent in the same millisecond are told apart by nothing else they share)."""
        candidates = self._long.get(cut, [])
        waiting = [key for key in candidates if self._waiting[key] > 0]
        found = waiting or candidates
        return found[0] if found else None

    def _claim(self, key: Key | None) -> bool:
        if key is None or key not in self._sent:
            return False
        if self._waiting[key] <= 0:
            self.duplicates += 1
            return False
        self._settle(key)
        return True

    def _settle(self, key: Key) -> None:
        self._waiting[key] -= 1
        if self._waiting[key] == 0:
            del self._waiting[key]
        self.unsettled -= 1
        self._check_settled()

    def _check_settled(self) -> None:
        if not self._sending and self.unsettled == 0:
            self.all_settled.set()

    def waiting(self, limit: int = 10) -> list[str]:
        """Some post ids still without an outcome, for the report."""
        return [
            "(no key)" if key is None else key.decode("utf-8", "replace")
            for (key, _), _ in self._waiting.most_common(limit)
        ]


def _post_key(message: dict[str, Any]) -> Key | None:
    post_id = message.get("post_id")
    ts = epoch_ms(message.get("post_produced_at"))
    if not isinstance(post_id, str) or ts is None:
        return None
    return (post_id.encode("utf-8", "surrogatepass"), ts)


class OutputReader:
    """Reads the decision, escalation and dead-letter topics from their ends into a Tracker."""

    def __init__(self, settings: Settings, tracker: Tracker) -> None:
        self._kinds = {
            settings.decisions_topic: "decisions",
            settings.escalations_topic: "escalations",
            settings.dead_letter_topic: "dead_letters",
        }
        self._tracker = tracker
        self._consumer = consumer(settings, group_id=None, enable_auto_commit=False)

    async def start(self) -> None:
        """Positions are fixed before the first post is sent, so no outcome can slip past."""
        started = False
        try:
            await self._consumer.start()
            await self._consumer.topics()
            tps = [tp for topic in self._kinds for tp in self._partitions(topic)]
            self._consumer.assign(tps)
            # Seek explicitly: seek_to_end() resolves lazily, after outputs may have arrived.
            for tp, offset in (await self._consumer.end_offsets(tps)).items():
                self._consumer.seek(tp, offset)
            started = True
        finally:
            if not started:  # cancelled or failed: the client closes either way
                await self._consumer.stop()

    def _partitions(self, topic: str) -> list[TopicPartition]:
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            raise FatalError(f"topic {topic} does not exist: run `modfleet topics create`")
        return [TopicPartition(topic, p) for p in sorted(partitions)]

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.value is not None:
                        self._tracker.add(self._kinds[tp.topic], record.value)

    async def stop(self) -> None:
        await self._consumer.stop()
