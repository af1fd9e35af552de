"""The worker's consumer fetches with the configured wait, not faust's fixed 1,500 ms."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import cast

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from modfleet.errors import FatalError
from modfleet.settings import Settings
from modfleet.stack.dev import stack_settings
from modfleet.stack.services import LocalBroker
from modfleet.stream import transport
from modfleet.stream.app import StreamWorker
from modfleet.stream.transport import set_fetch_wait


async def test_the_workers_kafka_consumer_waits_at_most_the_configured_time(
    make_settings: Callable[..., Settings],
) -> None:
    worker = StreamWorker(make_settings(consumer_fetch_max_wait_ms=150))
    # The consumer faust's consumer thread builds and starts (its fetcher reads the wait then).
    thread = worker.app.consumer._thread  # type: ignore[attr-defined]
    consumer = thread._create_worker_consumer(worker.app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 150
    finally:
        await consumer.stop()


def test_kafkas_fetch_wait_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODFLEET_CONSUMER_FETCH_MAX_WAIT_MS", raising=False)
    assert Settings().consumer_fetch_max_wait_ms == 500
    monkeypatch.setenv("MODFLEET_CONSUMER_FETCH_MAX_WAIT_MS", "0")
    with pytest.raises(ValidationError, match="consumer_fetch_max_wait_ms"):
        Settings()


def test_the_embedded_stack_fetches_with_a_short_wait_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = cast(LocalBroker, SimpleNamespace(url="kafka://127.0.0.1:9"))
    monkeypatch.delenv("MODFLEET_CONSUMER_FETCH_MAX_WAIT_MS", raising=False)
    assert stack_settings(broker, None, Settings()).consumer_fetch_max_wait_ms == 100
    monkeypatch.setenv("MODFLEET_CONSUMER_FETCH_MAX_WAIT_MS", "1500")
    assert stack_settings(broker, None, Settings()).consumer_fetch_max_wait_ms == 1500


async def test_an_aiokafka_without_the_attribute_stops_the_worker_saying_why() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    try:
        del consumer._fetch_max_wait_ms  # as a future aiokafka that renamed it would be
        with pytest.raises(FatalError, match="_fetch_max_wait_ms"):
            set_fetch_wait(consumer, 100)
    finally:
        await consumer.stop()


def test_an_aiokafka_without_the_attribute_fails_the_worker_at_start(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before faust's consumer thread runs: a worker that cannot set its fetch wait never starts.
    monkeypatch.setattr(transport, "_FETCH_WAIT_ATTRIBUTE", "_renamed_fetch_max_wait_ms")
    with pytest.raises(FatalError, match="_renamed_fetch_max_wait_ms"):
        StreamWorker(make_settings())
