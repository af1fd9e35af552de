"""``modfleet replay --embedded``: a broker, Redis and a worker on this machine, no Docker.

Built from the pieces ``modfleet dev`` uses. The replay starts only once the worker's consumer
group is stable: a worker answers /health before it owns any partition, and posts sent before
then would wait for the group join and show that wait as latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from aiokafka.admin import AIOKafkaAdminClient

from modfleet.errors import FatalError
from modfleet.kafka import client_options
from modfleet.settings import Settings
from modfleet.stack.dev import local_fleet


@contextlib.contextmanager
def embedded_stack(base: Settings) -> Iterator[Settings]:
    """Yields the settings that reach the local broker and Redis, with a worker consuming."""
    with local_fleet(base) as fleet:
        asyncio.run(wait_for_group(fleet.settings))
        yield fleet.settings


async def wait_for_group(settings: Settings, timeout_s: float = 60.0) -> None:
    """Returns once the workers' consumer group is stable with at least one member."""
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="modfleet-replay")
    await admin.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if await _stable(admin, settings.consumer_group):
                return
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise FatalError(f"consumer group {settings.consumer_group} not stable in {timeout_s:.0f} s")


async def _stable(admin: AIOKafkaAdminClient, group: str) -> bool:
    for response in await admin.describe_consumer_groups([group]):
        for described in response.groups:
            # Tuples in protocol order: error_code, group, state, protocol_type, protocol, members.
            if described[2] == "Stable" and described[5]:
                return True
    return False
