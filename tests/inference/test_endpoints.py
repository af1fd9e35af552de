"""Client-side balancing (endpoints.py): a headless Service's name stands for every replica,
requests go to the least busy one, and the set follows DNS. Scripted servers
(httpx.MockTransport) answer per address; the resolver is a stand-in for DNS."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest

from modfleet.errors import RecoverableError
from modfleet.inference.adapters import GptOssSafeguardAdapter
from modfleet.inference.endpoints import Endpoints, resolve_host
from modfleet.inference.openai_backend import HttpOptions, OpenAICompatibleClassifier
from modfleet.policy import Policy

SERVICE = "http://mf-modfleet-inference:8000/v1"
ANSWER = {"violation": 0, "category": None, "confidence": 0.9, "rationale": "fine"}


def reply() -> httpx.Response:
    content = json.dumps(ANSWER)
    return httpx.Response(
        200, json={"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
    )


class Dns:
    """Answers for one name; counts the questions."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        assert (host, port) == ("mf-modfleet-inference", 8000)
        self.asked += 1
        if not self.addresses:
            raise OSError("Name or service not known")
        return list(self.addresses)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def classifier(handler: Any, dns: Dns, **options: Any) -> OpenAICompatibleClassifier:
    values: dict[str, Any] = {"urls": (SERVICE,), "model": "m", "backoff_s": 0.0, **options}
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAICompatibleClassifier(
        GptOssSafeguardAdapter(), HttpOptions(**values), client, resolver=dns
    )


async def test_requests_spread_over_every_replica_behind_the_name(small_policy: Policy) -> None:
    seen: Counter[str] = Counter()
    hosts: set[str] = set()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] += 1
        hosts.add(request.headers["host"])
        await asyncio.sleep(0.01)  # all in flight together, as on a GPU
        return reply()

    backend = classifier(handler, Dns("10.0.0.1", "10.0.0.2", "10.0.0.3"), max_in_flight=30)
    await backend.classify([f"post {i}" for i in range(30)], small_policy)

    assert seen == {"10.0.0.1": 10, "10.0.0.2": 10, "10.0.0.3": 10}
    assert hosts == {"mf-modfleet-inference:8000"}  # the Service's name, as sent before


async def test_a_slow_replica_gets_less_work_than_the_fast_ones(small_policy: Policy) -> None:
    seen: Counter[str] = Counter()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] += 1
        await asyncio.sleep(0.2 if request.url.host == "10.0.0.1" else 0.005)
        return reply()

    backend = classifier(handler, Dns("10.0.0.1", "10.0.0.2", "10.0.0.3"), max_in_flight=3)
    await backend.classify([f"post {i}" for i in range(60)], small_policy)

    assert seen["10.0.0.1"] <= 3
    assert seen["10.0.0.2"] + seen["10.0.0.3"] >= 57


async def test_a_new_replica_gets_traffic_once_dns_lists_it_and_a_gone_one_none() -> None:
    dns, clock = Dns("10.0.0.1"), Clock()
    endpoints = Endpoints([SERVICE], failures=5, reset_s=10, resolver=dns, clock=clock)

    await endpoints.refresh()
    assert [e.url for e in endpoints.all] == ["http://10.0.0.1:8000/v1"]
    first = endpoints.pick()

    dns.addresses = ["10.0.0.1", "10.0.0.2"]
    await endpoints.refresh()  # within the interval: DNS is not asked again
    assert dns.asked == 1
    clock.now = 5.0
    await endpoints.refresh()
    assert dns.asked == 2
    # the busy old replica keeps its count; the idle new one is chosen next
    assert endpoints.pick().url == "http://10.0.0.2:8000/v1"
    assert first in endpoints.all

    dns.addresses = ["10.0.0.2"]
    clock.now = 10.0
    await endpoints.refresh()
    assert {endpoints.pick().url for _ in range(4)} == {"http://10.0.0.2:8000/v1"}


async def test_a_failing_replica_is_skipped_while_the_others_serve(small_policy: Policy) -> None:
    seen: Counter[str] = Counter()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] += 1
        return httpx.Response(502) if request.url.host == "10.0.0.1" else reply()

    backend = classifier(
        handler, Dns("10.0.0.1", "10.0.0.2"), attempts=3, breaker_failures=2, breaker_reset_s=60
    )
    for _ in range(10):
        verdicts = await backend.classify(["x"], small_policy)
        assert not verdicts[0].unparseable
    assert seen["10.0.0.1"] == 2  # then its circuit is open
    assert seen["10.0.0.2"] >= 10


async def test_without_an_answer_from_dns_the_url_itself_is_the_server() -> None:
    dns = Dns()
    endpoints = Endpoints([SERVICE], failures=1, reset_s=60, resolver=dns)
    await endpoints.refresh()
    (only,) = endpoints.all
    assert only.url == SERVICE
    assert only.headers == {}
    endpoints.pick()
    only.breaker.failure()
    with pytest.raises(RecoverableError, match="all 1 inference servers are failing"):
        endpoints.pick()


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000/v1", "https://llm.example:443/v1"])
async def test_addresses_and_https_names_are_not_resolved(url: str) -> None:
    dns = Dns("10.0.0.9")
    endpoints = Endpoints([url], failures=1, reset_s=60, resolver=dns)
    await endpoints.refresh()
    assert [e.url for e in endpoints.all] == [url]
    assert dns.asked == 0


async def test_resolve_host_asks_the_system_resolver() -> None:
    assert await resolve_host("localhost", 8000) in (["127.0.0.1"], ["::1"])
