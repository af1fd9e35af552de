from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SUPPORT = Path(__file__).parent / "support"
sys.path.insert(0, str(SUPPORT))

from services import kafka_broker, redis_server  # noqa: E402

from modfleet.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def kafka_url() -> Iterator[str]:
    with kafka_broker() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def make_settings(kafka_url: str, redis_url: str) -> Callable[..., Settings]:
    """Settings on the test services, with topics and a consumer group of this test's own."""

    def make(**overrides: object) -> Settings:
        run = uuid.uuid4().hex[:8]
        from modfleet.stack.services import free_port

        values: dict[str, object] = {
            "broker_url": kafka_url,
            "redis_url": redis_url,
            "consumer_group": f"modfleet-test-{run}",
            "posts_topic": f"posts-{run}",
            "decisions_topic": f"decisions-{run}",
            "escalations_topic": f"escalations-{run}",
            "dead_letter_topic": f"dead-letter-{run}",
            "shadow_decisions_topic": f"shadow-decisions-{run}",
            "broker_session_timeout_s": 6.0,
            "broker_heartbeat_interval_s": 1.0,
            "web_port": free_port(),
            "retry_backoff_s": 0.05,
            "cache_hmac_key": "modfleet-tests-cache-hmac-key",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make
