"""Verdicts in Redis, one round trip to read a micro-batch and one to write it back.

The cache is an accelerator, never a source of truth:

- every entry is sealed with the fleet's secret (:mod:`modfleet.cache.seal`); one that fails
  its seal, does not parse or does not fit the pack is a miss, counted by reason, and the post
  is classified again;
- a call that takes longer than ``cache_budget_s`` is abandoned (a read is all misses); two in
  a row, or a refused connection, open a breaker: batches skip Redis outright (no waiting at
  all) while a background probe PINGs it, and the first answer closes the breaker. A frozen
  Redis (SIGSTOP) thus costs two budgets once, not a timeout per batch. One slow call alone does
  not open it, because on a busy node the event loop itself can be late by more than a budget;
- the same probe runs from the start, so ``modfleet_cache_up`` is right before the first batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from modfleet.cache.packing import packed_by_hiredis
from modfleet.cache.seal import Opened, Rejected, Sealer
from modfleet.errors import FatalError
from modfleet.inference.base import Verdict, audience
from modfleet.metrics import Metrics
from modfleet.settings import Settings

if TYPE_CHECKING:
    from modfleet.policy import Policy

log = logging.getLogger(__name__)

T = TypeVar("T")

# v2: sealed entries, keyed by the pack's digest and the backend's cache scope. v3: an entry
# holds the pack's category scores (rounded to 6 places) rather than the model's, so a read
# maps nothing; a worker of v2 and one of v3 never read each other's entries.
_KEY_PREFIX = "modfleet:verdict:v3"
_MIN_SECRET_CHARS = 16
_OPEN_AFTER = 2  # consecutive slow or failed calls that open the breaker
# A write comes after the decision, so it may wait longer than a read before it is abandoned.
_WRITE_BUDGET_FACTOR = 4
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


def cache_key(policy: Policy, scope: str, content_hash: str, tenant: str) -> str:
    """Where the verdict on one tenant's text, under one pack's content and one backend, is
    kept.

    ``scope`` is the backend's :meth:`~modfleet.inference.base.Classifier.cache_scope` (model,
    adapter, prompt-template version). Two packs that share ``id@version`` but not content
    never share a key, nor do two backends; ``id@version`` stays readable for operators.
    """
    return key_head(policy, scope, tenant) + content_hash


def key_head(policy: Policy, scope: str, tenant: str) -> str:
    """Everything of :func:`cache_key` but the text's hash: the same for every post of one
    tenant under one pack and backend, so callers work it out once, not once a post. The
    tenant is part of it, under a shared pack too: a verdict computed for one tenant's post is
    never served to another, whose decision's ``from_cache`` (or speed) would tell it what the
    first posted."""
    material = f"{policy.digest}{audience(policy)}\x1ftenant={tenant}"
    return _key_head(policy.id, policy.version, material, scope)


@functools.lru_cache(maxsize=1024)
def _key_head(pack_id: str, version: str, digest: str, scope: str) -> str:
    material = "\x1f".join((digest, scope)).encode("utf-8", "surrogatepass")
    scoped = hashlib.sha256(material).hexdigest()[:32]
    return f"{_KEY_PREFIX}:{pack_id}@{version}:{scoped}:"


class VerdictCache:
    def __init__(
        self,
        client: aioredis.Redis | None,
        ttl_s: int,
        metrics: Metrics,
        *,
        secret: bytes = b"",
        budget_s: float = 0.075,
        probe_interval_s: float = 1.0,
        probe_timeout_s: float = 1.0,
    ) -> None:
        if client is not None and len(secret) < _MIN_SECRET_CHARS:
            raise FatalError(f"the cache's secret must be at least {_MIN_SECRET_CHARS} bytes")
        self._client = client
        self._ttl_s = ttl_s
        self._metrics = metrics
        self._sealer = Sealer(secret)
        self._budget_s = budget_s
        self._write_budget_s = max(budget_s, min(probe_timeout_s, _WRITE_BUDGET_FACTOR * budget_s))
        self._failures = 0  # consecutive
        self._probe_interval_s = probe_interval_s
        self._probe_timeout_s = max(probe_timeout_s, budget_s)
        self._open = False  # breaker: while open, calls skip Redis and the probe retries it
        self._last_ok = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._probe_owned = False  # someone runs run_probe(): no task of our own needed
        self._reported: set[Rejected] = set()
        self._unsealable: set[str] = set()  # exception types already logged on the write path

    @property
    def enabled(self) -> bool:
        return self._client is not None

    @property
    def skipping(self) -> bool:
        """True while Redis is being skipped after a failure or a slow answer."""
        return self._open

    async def run_probe(self) -> None:
        """Probe Redis until cancelled; a worker runs this from its start, so that
        ``modfleet_cache_up`` is right before the first batch. Without it, the probe starts
        with the first failure and the gauge is set by the first call."""
        if self._client is None:
            return
        self._probe_owned = True
        try:
            await self._probe_loop()
        finally:
            self._probe_owned = False

    async def get_many(self, keys: Sequence[str], packs: Sequence[Policy]) -> list[Verdict | None]:
        """One MGET for the whole batch; ``packs[i]`` is the pack ``keys[i]`` is decided under.

        Redis failing, slow or skipped reads as all misses; so does any entry that fails its
        seal or does not fit its pack.
        """
        if self._client is None or not keys:
            return [None] * len(keys)
        client = self._client
        raw = await self._guarded("read", lambda: client.mget(keys), self._budget_s)
        if raw is None:
            return [None] * len(keys)
        return [
            None if item is None else self._open_entry(key, item, pack)
            for key, item, pack in zip(keys, raw, packs, strict=True)
        ]

    async def put_many(self, verdicts: Mapping[str, Verdict], packs: Mapping[str, Policy]) -> None:
        """One round trip, one command: SET ... EX of every new verdict, sealed, in a script."""
        if self._client is None or not verdicts:
            return
        client = self._client
        sealed = {k: s for k, v in verdicts.items() if (s := self._sealed(k, v, packs[k]))}
        if not sealed:
            return
        values = list(sealed.values())
        await self._guarded(
            "write",
            lambda: client.eval(_SET_ALL, len(values), *sealed, *values, self._ttl_s),
            self._write_budget_s,
        )

    def _sealed(self, key: str, verdict: Verdict, pack: Policy) -> bytes | None:
        try:
            return self._sealer.seal(key, verdict, pack)
        except Exception as exc:  # noqa: BLE001 - one entry goes uncached, never the batch
            # The write runs under the delivery (the pipeline awaits it before the ack): a
            # verdict that cannot be sealed (a NaN score) must not fail the batch there. The
            # post itself is dead-lettered by the policy stage, which reads the same scores.
            self._metrics.cache_errors.labels(op="write").inc()
            why = type(exc).__name__
            if why not in self._unsealable:  # once per kind, as for entries that do not open
                self._unsealable.add(why)
                log.warning("a verdict could not be sealed for the cache (%s); not cached", why)
            return None

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        if self._client is not None:
            await self._client.aclose()

    def _open_entry(self, key: str, raw: bytes | str, pack: Policy) -> Verdict | None:
        try:
            opened = self._sealer.read(key, raw, pack)
        except Exception as exc:  # noqa: BLE001 - one entry costs one miss, never the batch
            opened = Opened(None, "unreadable", f"{type(exc).__name__}")
        if isinstance(opened, Verdict):
            return opened
        rejected = opened.rejected or "unreadable"  # read() says why whenever it has no verdict
        self._metrics.cache_rejected.labels(reason=rejected).inc()
        if rejected not in self._reported:
            # Once per reason: under attack every batch would repeat it; the metric counts.
            self._reported.add(rejected)
            log.warning(
                "ignoring a cached verdict (%s: %s) under %s; classifying the post again",
                rejected,
                opened.detail,
                pack.label,
            )
        return None

    async def _guarded(
        self, op: str, call: Callable[[], Awaitable[T]], budget_s: float
    ) -> T | None:
        """``call()`` within ``budget_s``; None when the breaker is open or the call fails."""
        if self._open:
            self._metrics.cache_skipped.labels(op=op).inc()
            return None
        try:
            async with asyncio.timeout(budget_s):
                result = await call()
        except (TimeoutError, RedisError, OSError) as exc:
            self._metrics.cache_errors.labels(op=op).inc()
            self._failures += 1
            if self._failures >= _OPEN_AFTER or _refused(exc):
                self._trip(op, exc, budget_s)
            return None
        self._mark_up()
        return result

    def _trip(self, op: str, exc: Exception, budget_s: float) -> None:
        self._metrics.cache_up.set(0)
        if not self._open:
            why = f"no answer within {budget_s:g} s" if isinstance(exc, TimeoutError) else exc
            log.warning("verdict cache unavailable (%s failed: %s); deciding without it", op, why)
        self._open = True
        if not self._probe_owned and (self._probe is None or self._probe.done()):
            # Started here for caches used without run_probe() (tools, tests).
            self._probe = asyncio.create_task(self._probe_loop(), name="verdict-cache-probe")

    def _mark_up(self) -> None:
        self._last_ok = time.monotonic()
        self._failures = 0
        self._metrics.cache_up.set(1)
        if self._open:
            log.warning("verdict cache reachable again")
        self._open = False

    async def _probe_loop(self) -> None:
        while True:
            if self._open or time.monotonic() - self._last_ok >= self._probe_interval_s:
                await self._ping()
            await asyncio.sleep(self._probe_interval_s)

    async def _ping(self) -> None:
        assert self._client is not None  # the probe only runs for a connected cache
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                await self._client.ping()
        except (TimeoutError, RedisError, OSError) as exc:
            if not self._open:
                self._metrics.cache_errors.labels(op="probe").inc()
                self._trip("probe", exc, self._probe_timeout_s)
            self._metrics.cache_up.set(0)
            return
        self._mark_up()


def _refused(exc: Exception) -> bool:
    """Redis said no outright (nothing listening, connection reset): no need to wait for more."""
    # TimeoutError is an OSError too, but a slow answer is not a refusal.
    return isinstance(exc, RedisConnectionError | OSError) and not isinstance(exc, TimeoutError)


def connect_cache(settings: Settings, metrics: Metrics) -> VerdictCache:
    """A cache on settings.redis_url, or a pass-through one when the cache is off.

    Without ``cache_hmac_key`` the cache is off (and says so once): a per-process key would
    make each worker of a fleet distrust every other worker's entries, and no key at all would
    let anyone who can write to Redis decide posts.
    """
    off = VerdictCache(None, settings.cache_ttl_s, metrics)
    if not settings.cache_enabled:
        return off
    if settings.cache_hmac_key is None:
        log.warning(
            "verdict cache off: MODFLEET_CACHE_HMAC_KEY is not set (a secret of %d+ characters, "
            "the same on every worker); every post is classified",
            _MIN_SECRET_CHARS,
        )
        return off
    secret = settings.cache_hmac_key.get_secret_value().encode("utf-8")
    if len(secret) < _MIN_SECRET_CHARS:
        raise FatalError(f"MODFLEET_CACHE_HMAC_KEY must be at least {_MIN_SECRET_CHARS} bytes")
    return VerdictCache(
        redis_client(settings),
        settings.cache_ttl_s,
        metrics,
        secret=secret,
        budget_s=settings.cache_budget_s,
        probe_interval_s=settings.cache_probe_interval_s,
        probe_timeout_s=settings.redis_timeout_s,
    )


def redis_client(settings: Settings) -> aioredis.Redis:
    """A client of ``settings.redis_url``, with its password, TLS and timeouts."""
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": settings.redis_timeout_s,
        "health_check_interval": 30,
    }
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_ssl_ca_certs is not None:  # only rediss:// connections accept it
        options["ssl_ca_certs"] = str(settings.redis_ssl_ca_certs)
    return packed_by_hiredis(
        aioredis.Redis.from_url(settings.redis_url.get_secret_value(), **options)
    )
