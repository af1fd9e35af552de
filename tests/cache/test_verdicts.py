"""The verdict cache on a real Redis: round trips, sealing, and the breaker."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator

import orjson
import pytest
from redis.asyncio.connection import Connection

from modfleet.cache import cache_key, connect_cache
from modfleet.inference import Verdict
from modfleet.inference.base import pack_salt
from modfleet.metrics import Metrics
from modfleet.policy import Policy
from modfleet.settings import Settings
from modfleet.stack import LocalRedis, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts writes to Redis sockets: a pipeline is one, however many commands it holds."""
    sent: list[int] = []
    original = Connection.send_packed_command

    async def counting(self: Connection, command: object, check_health: bool = True) -> None:
        sent.append(1)
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    return sent


def keys_for(pack: Policy, count: int, scope: str = "m") -> list[str]:
    return [cache_key(pack, scope, f"{i:064x}", "acme") for i in range(count)]


def counted(metrics: Metrics, name: str, label: str) -> float:
    return metrics.registry.get_sample_value(name, label) or 0.0


async def test_batch_reads_and_writes_take_one_round_trip_each(
    make_settings: Callable[..., Settings], round_trips: list[int], pack: Policy
) -> None:
    cache = connect_cache(make_settings(cache_ttl_s=60), Metrics())
    keys = keys_for(pack, 200)
    packs = [pack] * 200
    await cache.get_many(keys[:1], packs[:1])  # open the connection outside the count
    round_trips.clear()

    assert await cache.get_many(keys, packs) == [None] * 200
    assert len(round_trips) == 1
    verdicts = {k: Verdict({"offensive": i / 200}) for i, k in enumerate(keys)}
    await cache.put_many(verdicts, dict.fromkeys(keys, pack))
    assert len(round_trips) == 2

    found = await cache.get_many(keys, packs)
    assert len(round_trips) == 3
    assert [v.policy_scores(pack)["harassment"] if v else None for v in found] == [
        i / 200 for i in range(200)
    ]
    await cache.close()


async def test_verdicts_expire_after_the_ttl(
    make_settings: Callable[..., Settings], pack: Policy
) -> None:
    cache = connect_cache(make_settings(cache_ttl_s=7), Metrics())
    [key] = keys_for(pack, 1)
    await cache.put_many({key: Verdict({"offensive": 0.5})}, {key: pack})
    ttl = await cache._client.ttl(key)  # type: ignore[union-attr]
    assert 0 < ttl <= 7
    await cache.close()


def test_keys_differ_by_pack_content_and_backend_scope(
    pack: Policy, make_pack: Callable[..., Policy]
) -> None:
    stricter = make_pack(description="Same id and version, other content.")
    assert (stricter.id, stricter.version) == (pack.id, pack.version)
    text = "ab" * 32
    keys = {
        cache_key(pack, "m", text, "acme"),
        cache_key(stricter, "m", text, "acme"),
        cache_key(pack, "m|adapter=x|template=1", text, "acme"),
        cache_key(pack, "m|adapter=x|template=2", text, "acme"),
    }
    assert len(keys) == 4
    assert cache_key(pack, "m", text, "acme") == cache_key(make_pack(), "m", text, "acme")


def test_a_tenants_own_copy_of_a_pack_shares_neither_verdicts_nor_prefix_blocks(
    pack: Policy, make_pack: Callable[..., Policy]
) -> None:
    # The digest leaves tenants out, so the default pack and acme's copy of it (pinned to this
    # version, say) are the same content: still acme's posts are acme's alone, never a cache
    # hit that tells acme what another tenant posted.
    acme, also_acme = make_pack(tenants=["acme"]), make_pack(tenants=["acme"])
    assert acme.digest == pack.digest
    text = "ab" * 32
    assert cache_key(acme, "m", text, "acme") != cache_key(pack, "m", text, "acme")
    assert cache_key(acme, "m", text, "acme") == cache_key(also_acme, "m", text, "acme")
    assert cache_key(make_pack(tenants=["globex"]), "m", text, "globex") != cache_key(
        acme, "m", text, "acme"
    )
    # Under one pack too: the tenant is part of every key.
    assert cache_key(pack, "m", text, "acme") != cache_key(pack, "m", text, "globex")
    assert pack_salt("s", acme) != pack_salt("s", pack)
    assert pack_salt("s", acme) == pack_salt("s", also_acme)


async def test_forged_and_corrupted_entries_are_misses_counted_by_reason(
    make_settings: Callable[..., Settings], pack: Policy
) -> None:
    metrics = Metrics()
    cache = connect_cache(make_settings(), metrics)
    client = cache._client
    assert client is not None
    forged, corrupted, moved, honest = keys_for(pack, 4, scope="forgery")
    await cache.put_many(
        {k: Verdict({"offensive": 0.95}) for k in (corrupted, honest)},
        dict.fromkeys([corrupted, honest], pack),
    )
    # Anyone with write access to Redis: "this abusive text is fine".
    await client.set(forged, orjson.dumps({"scores": {"offensive": 0}}))
    entry = bytearray(await client.get(corrupted))
    entry[-5] ^= 0x20
    await client.set(corrupted, bytes(entry))
    await client.set(moved, await client.get(honest))  # an honest entry under another text's key

    found = await cache.get_many([forged, corrupted, moved, honest], [pack] * 4)
    assert [v is not None for v in found] == [False, False, False, True]
    name = "modfleet_cache_rejected_total"
    assert counted(metrics, name, {"reason": "unsealed"}) == 1
    assert counted(metrics, name, {"reason": "bad_seal"}) == 2
    await cache.close()


async def test_unsealable_verdicts_stay_uncached_counted_each_and_logged_once(
    make_settings: Callable[..., Settings], pack: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    # A broken backend's NaN scores in every post of a flood: each is counted, none cached,
    # and the log says so once rather than once a post.
    metrics = Metrics()
    cache = connect_cache(make_settings(), metrics)
    broken = keys_for(pack, 50, scope="unsealable")
    fine = keys_for(pack, 1, scope="sealable")
    verdicts = {k: Verdict({"offensive": float("nan")}) for k in broken}
    verdicts[fine[0]] = Verdict({"offensive": 0.25})
    with caplog.at_level(logging.WARNING, logger="modfleet.cache.verdicts"):
        await cache.put_many(verdicts, dict.fromkeys(verdicts, pack))
        await cache.put_many(verdicts, dict.fromkeys(verdicts, pack))
    assert counted(metrics, "modfleet_cache_errors_total", {"op": "write"}) == 100
    assert caplog.text.count("could not be sealed") == 1
    found = await cache.get_many([*broken, *fine], [pack] * 51)
    assert [v is not None for v in found] == [False] * 50 + [True]
    await cache.close()


async def test_without_a_secret_the_cache_is_off_and_says_so(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="modfleet.cache.verdicts"):
        cache = connect_cache(make_settings(cache_hmac_key=None), Metrics())
    assert not cache.enabled
    assert "MODFLEET_CACHE_HMAC_KEY is not set" in caplog.text


async def test_unreachable_redis_reads_as_misses_and_is_counted(
    make_settings: Callable[..., Settings], pack: Policy
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.2)
    metrics = Metrics()
    cache = connect_cache(settings, metrics)
    keys = keys_for(pack, 2)
    assert await cache.get_many(keys, [pack, pack]) == [None, None]
    assert counted(metrics, "modfleet_cache_errors_total", {"op": "read"}) == 1
    assert counted(metrics, "modfleet_cache_up", {}) == 0
    # The breaker is open: the write does not even try.
    await cache.put_many({keys[0]: Verdict({"offensive": 1.0})}, {keys[0]: pack})
    assert counted(metrics, "modfleet_cache_skipped_total", {"op": "write"}) == 1
    await cache.close()


async def test_cache_up_is_known_before_the_first_batch(
    make_settings: Callable[..., Settings],
) -> None:
    metrics = Metrics()
    metrics.cache_up.set(-1)  # neither answer yet
    cache = connect_cache(make_settings(), metrics)
    probe = asyncio.create_task(cache.run_probe())
    for _ in range(100):
        if counted(metrics, "modfleet_cache_up", {}) == 1:
            break
        await asyncio.sleep(0.02)
    assert counted(metrics, "modfleet_cache_up", {}) == 1
    probe.cancel()
    await cache.close()


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    if not LocalRedis.available():
        pytest.skip("needs a redis-server binary to freeze with SIGSTOP")
    with LocalRedis() as redis:
        yield redis
        if redis.pid is not None:
            os.kill(redis.pid, signal.SIGCONT)  # never leave it frozen for the teardown


async def test_a_frozen_redis_is_skipped_then_used_again_after_it_thaws(
    make_settings: Callable[..., Settings], own_redis: LocalRedis, pack: Policy
) -> None:
    settings = make_settings(
        redis_url=own_redis.url, redis_timeout_s=10, cache_budget_s=0.1, cache_probe_interval_s=0.2
    )
    metrics = Metrics()
    cache = connect_cache(settings, metrics)
    keys = keys_for(pack, 10, scope="frozen")
    await cache.put_many({k: Verdict({"offensive": 0.5}) for k in keys}, dict.fromkeys(keys, pack))
    assert all(await cache.get_many(keys, [pack] * 10))
    assert own_redis.pid is not None
    os.kill(own_redis.pid, signal.SIGSTOP)

    started = time.monotonic()
    for _ in range(5):
        assert await cache.get_many(keys, [pack] * 10) == [None] * 10
    # Not a speed target: far below the 10 s socket timeout means the budget, not Redis, ended it.
    assert time.monotonic() - started < 5
    assert cache.skipping
    # Two slow calls in a row open the breaker; the next three do not even try.
    assert counted(metrics, "modfleet_cache_errors_total", {"op": "read"}) == 2
    assert counted(metrics, "modfleet_cache_skipped_total", {"op": "read"}) == 3
    assert counted(metrics, "modfleet_cache_up", {}) == 0

    os.kill(own_redis.pid, signal.SIGCONT)
    for _ in range(100):
        if not cache.skipping:
            break
        await asyncio.sleep(0.05)
    assert not cache.skipping, "the background probe closes the breaker once Redis answers"
    assert counted(metrics, "modfleet_cache_up", {}) == 1
    assert all(await cache.get_many(keys, [pack] * 10)), "verdicts are read from Redis again"
    await cache.close()
