"""What one pod's crash journal learned, shared with the fleet through Redis.

A pod's journal (``stream/journal.py``) is its own file, so a partition that moves to another
pod between two deaths would cost that pod its two deaths as well. A worker that starts and
finds that its last run died therefore publishes what it learned (the offsets it died with,
the post it died on alone), and every worker reads what the fleet published whenever
partitions are assigned to it. Nothing is written or read a batch: a death is rare, and every
death is followed by an assignment.

Entries are sealed with the cache's secret (keyed BLAKE2b, with a personalisation of their
own, so that no cache entry can pass for one): anyone who can write to Redis could otherwise
have any post dead-lettered unread. Redis down costs only the sharing: each pod still learns
from its own deaths.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from modfleet.cache.seal import KeyedMac
from modfleet.cache.verdicts import redis_client
from modfleet.settings import Settings
from modfleet.stream.journal import (
    Learned,
    culprit_row,
    read_culprit,
    read_span,
    span_row,
)

log = logging.getLogger(__name__)

MAX_ENTRIES = 64  # deaths remembered a consumer group, newest first
_TTL_S = 7 * 86_400  # a week past the last death: a replay of the topic meets the same posts
_PERSON = b"modfleet.crashes"  # the MAC's personalisation: no cache entry passes for one


class SharedCrashes:
    """Deaths shared among the workers of ``group``; with no client, nothing is shared."""

    def __init__(
        self, client: aioredis.Redis | None, secret: bytes, group: str, timeout_s: float
    ) -> None:
        self._client = client
        self.key = f"modfleet:crashes:{group}"
        self._keyed = KeyedMac(secret, _PERSON)
        self._timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> SharedCrashes:
        """On the cache's Redis and secret; nothing is shared while the cache is off."""
        group = settings.consumer_group
        secret = settings.cache_hmac_key
        if not settings.cache_enabled or secret is None:
            return cls(None, b"", group, settings.redis_timeout_s)
        sealing = secret.get_secret_value().encode("utf-8")
        return cls(redis_client(settings), sealing, group, settings.redis_timeout_s)

    async def publish(self, learned: Learned) -> None:
        """Tell the fleet what this worker's last run died of."""
        if self._client is None or not learned:
            return
        payload = orjson.dumps(
            {
                "suspects": [span_row(s) for s in learned.suspects],
                "culprits": [culprit_row(c) for c in learned.culprits],
            }
        )
        entry = self._keyed.seal(self.key, payload)  # bound to the group's key
        try:
            async with asyncio.timeout(self._timeout_s):
                pipe = self._client.pipeline(transaction=True)
                pipe.lpush(self.key, entry)
                pipe.ltrim(self.key, 0, MAX_ENTRIES - 1)
                pipe.expire(self.key, _TTL_S)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "what the crash journal learned could not be shared (%s): other workers learn "
                "it from deaths of their own",
                type(exc).__name__,
            )

    async def fetch(self) -> Learned:
        """What the fleet's workers died of, as far as Redis can say within its timeout."""
        if self._client is None:
            return Learned()
        try:
            async with asyncio.timeout(self._timeout_s):
                entries = await self._client.lrange(self.key, 0, MAX_ENTRIES - 1)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "the fleet's crash journal could not be read (%s): this worker knows only its "
                "own deaths",
                type(exc).__name__,
            )
            return Learned()
        return self._opened(entries)

    def _opened(self, entries: list[bytes | str]) -> Learned:
        suspects, culprits, refused = [], [], 0
        for entry in entries:
            payload = self._keyed.open(self.key, entry)
            if not isinstance(payload, bytes):
                refused += 1
                continue
            try:
                body = orjson.loads(payload)
                suspects += [read_span(s) for s in body["suspects"]]
                culprits += [read_culprit(c) for c in body["culprits"]]
            except (ValueError, TypeError, KeyError):
                refused += 1
        if refused:
            log.error(
                "%d entries of %s were not sealed by this fleet's secret or not readable: "
                "ignored (who else writes to this Redis?)",
                refused,
                self.key,
            )
        return Learned(tuple(dict.fromkeys(suspects)), tuple(dict.fromkeys(culprits)))
