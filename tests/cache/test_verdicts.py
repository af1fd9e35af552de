"""The verdict cache on a real Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.asyncio.connection import Connection

from modfleet.cache import cache_key, connect_cache
from modfleet.inference import Verdict
from modfleet.metrics import Metrics
from modfleet.settings import Settings
from modfleet.stack import free_port

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


async def test_batch_reads_and_writes_take_one_round_trip_each(
    make_settings: Callable[..., Settings], round_trips: list[int]
) -> None:
    settings = make_settings(cache_ttl_s=60)
    cache = connect_cache(settings, Metrics())
    keys = [cache_key("default", "1.0.0", "m", f"{i:064x}") for i in range(200)]
    await cache.get_many(keys[:1])  # open the connection outside the count
    round_trips.clear()

    assert await cache.get_many(keys) == [None] * 200
    assert len(round_trips) == 1
    await cache.put_many({k: Verdict({"offensive": i / 200}) for i, k in enumerate(keys)})
    assert len(round_trips) == 2

    found = await cache.get_many(keys)
    assert len(round_trips) == 3
    assert [v.scores["offensive"] if v else None for v in found] == [i / 200 for i in range(200)]
    await cache.close()


async def test_verdicts_expire_after_the_ttl(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(cache_ttl_s=7)
    cache = connect_cache(settings, Metrics())
    key = cache_key("default", "1.0.0", "m", "ab" * 32)
    await cache.put_many({key: Verdict({"offensive": 0.5})})
    ttl = await cache._client.ttl(key)  # type: ignore[union-attr]
    assert 0 < ttl <= 7
    await cache.close()


async def test_unreachable_redis_reads_as_misses_and_is_counted(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.2)
    metrics = Metrics()
    cache = connect_cache(settings, metrics)
    assert await cache.get_many(["a", "b"]) == [None, None]
    await cache.put_many({"a": Verdict({"offensive": 1.0})})
    text = metrics.render().decode()
    assert 'modfleet_cache_errors_total{op="read"} 1.0' in text
    assert 'modfleet_cache_errors_total{op="write"} 1.0' in text
    assert "modfleet_cache_up 0.0" in text
    await cache.close()
