"""The openai backend against scripted servers (httpx.MockTransport): retries, breaker, spread,
in-flight bound, error kinds. The real-server test is test_llama_server_integration.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from modfleet.errors import FatalError, RecoverableError, RejectedInput
from modfleet.inference.adapters import Completion, GptOssSafeguardAdapter, LlamaGuardAdapter
from modfleet.inference.base import pack_salt
from modfleet.inference.breaker import CircuitBreaker
from modfleet.inference.openai_backend import HttpOptions, OpenAICompatibleClassifier
from modfleet.policy import Policy

ANSWER = {"violation": 0, "category": None, "confidence": 0.9, "rationale": "fine"}
URLS = ("http://a.test/v1", "http://b.test/v1")


def chat_reply(content: str = json.dumps(ANSWER)) -> httpx.Response:
    return httpx.Response(
        200, json={"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
    )


Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def backend(handler: Handler, adapter: Any = None, **options: Any) -> OpenAICompatibleClassifier:
    values: dict[str, Any] = {"urls": URLS, "model": "m", "backoff_s": 0.0, **options}
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAICompatibleClassifier(
        adapter or GptOssSafeguardAdapter(), HttpOptions(**values), client
    )


async def test_a_batch_is_sent_as_concurrent_requests_spread_over_servers(
    small_policy: Policy,
) -> None:
    hosts: list[str] = []
    bodies: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        bodies.append(json.loads(request.content))
        return chat_reply()

    classifier = backend(handler, cache_salt="tenant-a")
    verdicts = await classifier.classify(["one", "two", "three", "four"], small_policy)
    assert [v.unparseable for v in verdicts] == [False] * 4
    assert sorted(hosts) == ["a.test", "a.test", "b.test", "b.test"]
    body = bodies[0]
    assert body["cache_salt"] == pack_salt("tenant-a", small_policy)
    assert body["temperature"] == 0.0
    assert body["response_format"]["type"] == "json_schema"
    assert body["messages"][0]["content"] == bodies[1]["messages"][0]["content"]


async def test_in_flight_requests_are_bounded(small_policy: Policy) -> None:
    now = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.01)
        now -= 1
        return chat_reply()

    classifier = backend(handler, max_in_flight=3)
    await classifier.classify([f"post {i}" for i in range(20)], small_policy)
    assert peak == 3


async def test_retryable_statuses_are_retried(small_policy: Policy) -> None:
    statuses = [503, 429, 200]

    async def handler(request: httpx.Request) -> httpx.Response:
        status = statuses.pop(0)
        return chat_reply() if status == 200 else httpx.Response(status, text="busy")

    classifier = backend(handler, attempts=3)
    [verdict] = await classifier.classify(["x"], small_policy)
    assert not verdict.unparseable
    assert classifier.requests_sent == 3


async def test_retries_give_up_with_a_recoverable_error(small_policy: Policy) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    classifier = backend(handler, attempts=2, breaker_failures=100)
    with pytest.raises(RecoverableError, match="ConnectError"):
        await classifier.classify(["x"], small_policy)
    assert classifier.requests_sent == 2


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_a_request_the_server_refuses_is_that_inputs_and_not_retried(
    small_policy: Policy, status: int
) -> None:
    # vLLM answers 400 to a prompt over the model's context length: that post's fault, not
    # the worker's, so the caller dead-letters the post rather than stopping.
    async def handler(request: httpx.Request) -> httpx.Response:
        if b"an endless post" in request.content:
            return httpx.Response(status, text="This model's maximum context length is 4096")
        return chat_reply()

    classifier = backend(handler, urls=URLS[:1], attempts=3, breaker_failures=1)
    with pytest.raises(RejectedInput, match=f"HTTP {status}.*context length"):
        await classifier.classify(["an endless post"], small_policy)
    assert classifier.requests_sent == 1
    # The server answered, so its circuit stays closed: the next post is scored.
    (verdict,) = await classifier.classify(["a short post"], small_policy)
    assert not verdict.unparseable


async def test_an_answer_the_adapter_fails_on_is_that_posts_unreadable_verdict(
    small_policy: Policy,
) -> None:
    # A post steers the model into an answer the adapter cannot read: that post goes to a
    # reviewer as unparseable; its batch is not retried, isolated and dead-lettered over it.
    steered = json.dumps({"violation": 1, "category": ["spam"], "confidence": 1, "rationale": ""})

    async def handler(request: httpx.Request) -> httpx.Response:
        return chat_reply(steered if b"steer me" in request.content else json.dumps(ANSWER))

    class Failing(GptOssSafeguardAdapter):
        def parse(self, completion: Any, policy: Policy) -> Any:
            if "broken" in completion.text:
                raise KeyError("a bug of ours, on one answer")
            return super().parse(completion, policy)

    classifier = backend(handler, adapter=Failing())
    texts = ["hello", "steer me", "bye"]
    verdicts = await classifier.classify(texts, small_policy)
    assert [v.unparseable for v in verdicts] == [False, True, False]
    assert verdicts[1].raw_output == steered
    assert classifier.requests_sent == len(texts)
    broken = Failing().read(Completion("broken answer"), small_policy)
    assert broken.unparseable
    assert broken.rationale == "KeyError reading the answer"


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refused_key_model_or_path_is_fatal_and_not_retried(
    small_policy: Policy, status: int
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="the model `m` does not exist")

    classifier = backend(handler, attempts=3)
    with pytest.raises(FatalError, match=str(status)):
        await classifier.classify(["x"], small_policy)
    assert classifier.requests_sent == 1


async def test_a_slow_server_times_out_as_recoverable(small_policy: Policy) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return chat_reply()

    classifier = backend(handler, attempts=1, timeout_s=0.05)
    with pytest.raises(RecoverableError, match="TimeoutError"):
        await classifier.classify(["x"], small_policy)


async def test_open_circuits_fail_fast_without_calling_the_servers(small_policy: Policy) -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502)

    classifier = backend(handler, attempts=1, breaker_failures=2, breaker_reset_s=60)
    for _ in range(4):  # two failures per server open both circuits
        with pytest.raises(RecoverableError):
            await classifier.classify(["x"], small_policy)
    assert calls == 4
    with pytest.raises(RecoverableError, match="all 2 inference servers are failing"):
        await classifier.classify(["x"], small_policy)
    assert calls == 4


async def test_an_unreadable_answer_is_an_unparseable_verdict(small_policy: Policy) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return chat_reply("I think it is fine")

    [verdict] = await backend(handler).classify(["x"], small_policy)
    assert verdict.unparseable
    assert verdict.raw_output == "I think it is fine"


async def test_completion_endpoint_with_logprobs_for_llama_guard(small_policy: Policy) -> None:
    seen: dict[str, Any] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        seen["path"] = request.url.path
        seen["body"] = json.loads(request.content)
        top = [{"unsafe": -0.1, "safe": -2.4}, {"\n": 0.0}, {"S1": 0.0}]
        choice = {"text": "unsafe\nS1", "logprobs": {"top_logprobs": top}}
        return httpx.Response(200, json={"choices": [choice]})

    [verdict] = await backend(handler, LlamaGuardAdapter(3)).classify(["x"], small_policy)
    assert seen["path"] == "/v1/completions"
    assert seen["body"]["logprobs"] == 5
    assert not seen["body"]["prompt"].startswith("<|begin_of_text|>")
    assert verdict.categories is not None
    assert verdict.categories["harassment"] == pytest.approx(0.909, abs=0.001)


def test_breaker_opens_then_lets_one_probe_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker("s", failures=2, reset_s=10, clock=lambda: now[0])
    breaker.failure()
    breaker.acquire()  # still closed after one failure
    breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(RecoverableError, match="circuit open"):
        breaker.acquire()
    now[0] = 10.0
    assert breaker.state == "half_open"
    breaker.acquire()  # the probe
    with pytest.raises(RecoverableError):
        breaker.acquire()  # only one probe at a time
    breaker.failure()
    assert breaker.state == "open"  # the probe failed: open again for reset_s
    now[0] = 20.0
    breaker.acquire()
    breaker.success()
    assert breaker.state == "closed"


def test_a_cancelled_probe_does_not_wedge_the_circuit() -> None:
    now = [0.0]
    breaker = CircuitBreaker("s", failures=1, reset_s=1, clock=lambda: now[0])
    breaker.failure()
    now[0] = 1.0
    breaker.acquire()
    breaker.cancelled()
    assert breaker.available()


def test_each_pack_gets_its_own_prefix_cache_salt(small_policy: Policy) -> None:
    other = small_policy.model_copy(update={"description": "another tenant's own pack"})
    assert pack_salt(None, small_policy) == pack_salt(None, small_policy)
    assert pack_salt(None, small_policy) != pack_salt(None, other), "tenants' packs never share"
    assert pack_salt("fleet-a", small_policy) != pack_salt("fleet-b", small_policy)


def _garbled(kind: str) -> httpx.Response:
    if kind == "bad gzip":
        headers = {"content-encoding": "gzip", "content-type": "application/json"}
        return httpx.Response(200, content=b"not gzip at all", headers=headers)
    if kind == "deep nesting":
        return httpx.Response(200, content=b"[" * 200_000)
    logprobs = {"top_logprobs": [{"safe": "abc"}]}  # a logprob that is not a number
    return httpx.Response(200, json={"choices": [{"text": "safe", "logprobs": logprobs}]})


@pytest.mark.parametrize("kind", ["bad gzip", "deep nesting", "logprob not a number"])
async def test_a_garbled_answer_to_the_probe_leaves_the_circuit_to_probe_again(
    small_policy: Policy, kind: str
) -> None:
    # A server's answer, however garbled, is its failure: the circuit must open again and let
    # the next probe through once the server is well, not stay half-open with a probe "out".
    answers = ["refuse", kind]

    async def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0) if answers else "ok"
        if answer == "refuse":
            raise httpx.ConnectError("refused", request=request)
        if answer == "ok":
            return httpx.Response(200, json={"choices": [{"text": "safe"}]})
        return _garbled(answer)

    classifier = backend(
        handler,
        LlamaGuardAdapter(3),
        urls=URLS[:1],
        attempts=1,
        breaker_failures=1,
        breaker_reset_s=0.01,
    )
    with pytest.raises(RecoverableError, match="ConnectError"):
        await classifier.classify(["x"], small_policy)  # opens the circuit
    await asyncio.sleep(0.02)
    with pytest.raises(RecoverableError, match="unreadable response"):
        await classifier.classify(["x"], small_policy)  # the probe, answered garbled
    await asyncio.sleep(0.02)
    (verdict,) = await classifier.classify(["x"], small_policy)
    assert not verdict.unparseable
    assert classifier.requests_sent == 3


async def test_an_endless_answer_is_read_no_further_than_its_tokens_can_take(
    small_policy: Policy,
) -> None:
    # A server (or a proxy before it) that streams without end must cost the worker a bounded
    # read, not its memory: the answer is unreadable past what max_tokens tokens can take.
    sent = 0

    async def endless() -> Any:
        nonlocal sent
        while True:
            sent += 1
            yield b'{"choices": [' * 4096

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    classifier = backend(handler, LlamaGuardAdapter(3), urls=URLS[:1], attempts=1)
    with pytest.raises(RecoverableError, match="unreadable response: HTTP 200: an answer over"):
        await classifier.classify(["x"], small_policy)
    read = sent * len(b'{"choices": [') * 4096
    assert read < 2 * 1024 * 1024
