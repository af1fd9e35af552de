"""Verdicts in Redis, one round trip to read a micro-batch and one to write it back.

The cache is an accelerator, never a source of truth: when Redis is slow or down the batch is
classified as if every post missed, and the worker says so in a log line and a metric.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from modfleet.inference.base import Verdict
from modfleet.metrics import Metrics
from modfleet.settings import Settings

log = logging.getLogger(__name__)

_KEY_PREFIX = "modfleet:verdict:v1"
# SET key value EX ttl for each key. A pipeline of SETs did the same in one round trip too, but
# redis-py parses every SET's reply on its own, which made the write a quarter of the cost of a
# cache-miss batch (docs/benchmarks.md); the script has one reply. EVAL, not EVALSHA, so that a
# restarted Redis (empty script cache) costs no extra round trip.
_SET_ALL = """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i], 'EX', ttl)
end
return #KEYS
"""


def cache_key(policy_id: str, policy_version: str, model_id: str, content_hash: str) -> str:
    """A verdict is only reusable for the same text, policy version and model."""
    return f"{_KEY_PREFIX}:{policy_id}:{policy_version}:{model_id}:{content_hash}"


class VerdictCache:
    def __init__(self, client: aioredis.Redis | None, ttl_s: int, metrics: Metrics) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._metrics = metrics
        self._degraded = False

    @property
    def enabled(self) -> bool:
        return self._client is not None

    async def get_many(self, keys: Sequence[str]) -> list[Verdict | None]:
        """One MGET for the whole batch; a Redis failure reads as all misses."""
        if self._client is None or not keys:
            return [None] * len(keys)
        try:
            raw = await self._client.mget(keys)
        except (RedisError, OSError) as exc:
            self._on_error("read", exc)
            return [None] * len(keys)
        self._on_success()
        return [self._decode(item) for item in raw]

    async def put_many(self, verdicts: Mapping[str, Verdict]) -> None:
        """One round trip, one command: SET ... EX of every new verdict, in a script."""
        if self._client is None or not verdicts:
            return
        values = [orjson.dumps(verdict.to_json()) for verdict in verdicts.values()]
        try:
            await self._client.eval(_SET_ALL, len(values), *verdicts, *values, self._ttl_s)
        except (RedisError, OSError) as exc:
            self._on_error("write", exc)
            return
        self._on_success()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _decode(self, item: bytes | str | None) -> Verdict | None:
        if item is None:
            return None
        try:
            return Verdict.from_json(orjson.loads(item))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            # A value written by an incompatible version: classify again rather than trust it.
            log.warning("ignoring an unreadable cached verdict")
            return None

    def _on_error(self, op: str, exc: Exception) -> None:
        self._metrics.cache_errors.labels(op=op).inc()
        self._metrics.cache_up.set(0)
        if not self._degraded:
            log.warning("verdict cache unavailable (%s failed: %s); deciding without it", op, exc)
        self._degraded = True

    def _on_success(self) -> None:
        self._metrics.cache_up.set(1)
        if self._degraded:
            log.warning("verdict cache reachable again")
        self._degraded = False


def connect_cache(settings: Settings, metrics: Metrics) -> VerdictCache:
    """A cache on settings.redis_url, or a pass-through one when the cache is disabled."""
    if not settings.cache_enabled:
        return VerdictCache(None, settings.cache_ttl_s, metrics)
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": settings.redis_timeout_s,
        "health_check_interval": 30,
    }
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_ssl_ca_certs is not None:  # only rediss:// connections accept it
        options["ssl_ca_certs"] = str(settings.redis_ssl_ca_certs)
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value(), **options)
    return VerdictCache(client, settings.cache_ttl_s, metrics)
