"""What a pod's crash journal learned, shared through a real Redis: every worker of the group
reads it; nothing unsealed, of another fleet's secret or of another group is believed; a Redis
that is down costs the sharing only."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from modfleet.settings import Settings
from modfleet.stack import free_port
from modfleet.stream.crash_share import MAX_ENTRIES, SharedCrashes
from modfleet.stream.journal import Culprit, Learned, Span

SECRET = b"a-fleet-secret-of-some-length"
DIED = Learned(
    (Span("posts", 3, 100, 611), Span("posts", 7, 40, 40)),
    (Culprit("posts", 3, 250, "ab" * 16),),
)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    found = aioredis.Redis.from_url(redis_url)
    yield found
    await found.aclose()


def shared(
    client: aioredis.Redis | None, group: str, secret: bytes = SECRET
) -> Callable[[], SharedCrashes]:
    return lambda: SharedCrashes(client, secret, group, timeout_s=2.0)


async def test_what_one_worker_learned_every_worker_of_its_group_reads(
    client: aioredis.Redis,
) -> None:
    pod = shared(client, f"group-{uuid.uuid4().hex}")
    await pod().publish(DIED)
    assert await pod().fetch() == DIED
    later = Learned((Span("posts", 0, 5, 9),), ())
    await pod().publish(later)
    both = await pod().fetch()
    assert set(both.suspects) == set(DIED.suspects) | set(later.suspects)
    assert both.culprits == DIED.culprits


async def test_nothing_learned_nothing_written(client: aioredis.Redis) -> None:
    pod = shared(client, f"group-{uuid.uuid4().hex}")()
    await pod.publish(Learned())
    assert await client.exists(pod.key) == 0


async def test_another_group_or_another_secret_or_a_forgery_is_not_believed(
    client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    group = f"group-{uuid.uuid4().hex}"
    await shared(client, f"other-{group}")().publish(DIED)
    assert not await shared(client, group)().fetch(), "another group's deaths are its own"

    await shared(client, group, secret=b"another-fleet-secret-entirely")().publish(DIED)
    pod = shared(client, group)()
    forged = b'{"suspects": [], "culprits": [["posts", 0, 1, "' + b"00" * 16 + b'"]]}'
    await client.lpush(pod.key, b"0" * 64 + b"." + forged, forged, b"", b"x" * 70_000)
    with caplog.at_level(logging.ERROR):
        assert not await pod.fetch(), "anyone who can write to Redis could blame any post"
    assert "5 entries of" in caplog.text

    await pod.publish(DIED)
    assert await pod.fetch() == DIED, "the fleet's own entries still count"


async def test_the_fleet_remembers_its_latest_deaths_only(client: aioredis.Redis) -> None:
    pod = shared(client, f"group-{uuid.uuid4().hex}")
    for death in range(MAX_ENTRIES + 10):
        await pod().publish(Learned((Span("posts", 0, death, death),), ()))
    remembered = await pod().fetch()
    assert len(remembered.suspects) == MAX_ENTRIES
    assert Span("posts", 0, MAX_ENTRIES + 9, MAX_ENTRIES + 9) in remembered.suspects
    assert Span("posts", 0, 0, 0) not in remembered.suspects
    assert 0 < await client.ttl(pod().key) <= 7 * 86_400


async def test_a_redis_that_is_down_costs_only_the_sharing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = aioredis.Redis(port=free_port(), socket_connect_timeout=1.0)
    pod = SharedCrashes(down, SECRET, "group", timeout_s=1.0)
    with caplog.at_level(logging.WARNING):
        await pod.publish(DIED)
        assert await pod.fetch() == Learned()
    assert "learned could not be shared (" in caplog.text
    assert "crash journal could not be read (" in caplog.text
    await down.aclose()


async def test_with_the_cache_off_nothing_is_shared(client: aioredis.Redis, redis_url: str) -> None:
    group = f"group-{uuid.uuid4().hex}"
    on_redis = {"redis_url": SecretStr(redis_url), "consumer_group": group}
    for settings in (
        Settings(**on_redis, cache_enabled=False, cache_hmac_key=SecretStr("x" * 32)),
        Settings(**on_redis, cache_enabled=True, cache_hmac_key=None),
    ):
        pod = SharedCrashes.from_settings(settings)
        await pod.publish(DIED)
        assert not await pod.fetch()
    assert await client.exists(f"modfleet:crashes:{group}") == 0
