"""The ``openai`` backend: any OpenAI-compatible server (``vllm serve``, SGLang, llama.cpp).

A micro-batch becomes one request per distinct text, all sent at once up to
``inference_max_in_flight``, so that the server's continuous batching sees enough sequences to
keep the GPU busy. Each request has its own deadline and retries (backoff with full jitter) on
what a retry can fix: 408/409/429, 5xx, dropped connections, timeouts. Other 4xx are the
request's fault and fatal for it. Requests spread over the servers (every address of each URL's
name, least outstanding first; see endpoints.py), each behind its own circuit breaker, so a dead
server is skipped instead of waited on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from modfleet.errors import FatalError, ModfleetError, RecoverableError, RejectedInput
from modfleet.inference import openai_wire
from modfleet.inference.adapters import Adapter, Completion, Request, create_adapter
from modfleet.inference.base import Classifier, Verdict, pack_salt
from modfleet.inference.endpoints import Endpoints, Resolver, resolve_host

if TYPE_CHECKING:
    from modfleet.policy import Policy
    from modfleet.settings import Settings

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# The server read the request and will not take this one: a prompt over the context length
# (vLLM: 400), a body too large (413), a value out of range (422). Another post's request is
# still welcome, so the post is dead-lettered alone; the worker's probe tells such a refusal
# from a configuration that every request gets (Inference). Other 4xx (401, 403, 404: a key,
# a model name, a path) are the configuration's, for every post alike.
_REFUSED_INPUT_STATUS = frozenset({400, 413, 422})
_BACKOFF_CAP_S = 5.0
# An answer's size bound (answer_limit): its frame (ids, usage, an error's text), then per token
# its text and logprob, JSON-escaped, and as much again for each logprob alternative asked for.
_ANSWER_FRAME_BYTES = 64 * 1024
_TOKEN_BYTES = 256


@dataclass(frozen=True, slots=True)
class HttpOptions:
    urls: tuple[str, ...]
    model: str
    api_key: str | None = None
    max_in_flight: int = 64
    timeout_s: float = 30.0
    attempts: int = 3
    backoff_s: float = 0.2
    breaker_failures: int = 5
    breaker_reset_s: float = 10.0
    response_format: openai_wire.ResponseFormat = "json_schema"
    cache_salt: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpOptions:
        key, salt = settings.inference_api_key, settings.inference_cache_salt
        return cls(
            urls=settings.inference_url_list,
            model=settings.inference_model,
            api_key=None if key is None else key.get_secret_value(),
            max_in_flight=settings.inference_max_in_flight,
            timeout_s=settings.inference_timeout_s,
            attempts=settings.inference_attempts,
            backoff_s=settings.inference_backoff_s,
            breaker_failures=settings.inference_breaker_failures,
            breaker_reset_s=settings.inference_breaker_reset_s,
            response_format=settings.inference_response_format,
            cache_salt=None if salt is None else salt.get_secret_value(),
        )


class OpenAICompatibleClassifier(Classifier):
    def __init__(
        self,
        adapter: Adapter,
        options: HttpOptions,
        client: httpx.AsyncClient | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        """``resolver`` finds the addresses behind the URLs' names; None: each URL is one
        server (``from_settings`` resolves with DNS)."""
        if not options.urls:
            raise FatalError("inference_urls names no server")
        self.adapter = adapter
        self.options = options
        self.model_id = f"{adapter.name}:{options.model}"
        self._servers = Endpoints(
            options.urls, options.breaker_failures, options.breaker_reset_s, resolver
        )
        self._slots = asyncio.Semaphore(options.max_in_flight)
        self._client = client or _client(options)
        self.requests_sent = 0  # for tests and the benchmark

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleClassifier:
        adapter = create_adapter(
            settings.inference_adapter,
            keep_reasoning=settings.inference_keep_reasoning,
            max_tokens=settings.inference_max_tokens,
        )
        return cls(adapter, HttpOptions.from_settings(settings), resolver=resolve_host)

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if not texts:
            return []
        try:
            # A TaskGroup cancels the batch's other requests as soon as one has failed for good.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._one(text, policy)) for text in texts]
        except ExceptionGroup as failed:
            raise _first_error(failed) from None
        return [task.result() for task in tasks]

    async def close(self) -> None:
        await self._client.aclose()

    async def _one(self, text: str, policy: Policy) -> Verdict:
        request = self.adapter.request(policy, text)
        body = openai_wire.body(
            self.adapter,
            request,
            self.options.model,
            self.options.response_format,
            pack_salt(self.options.cache_salt, policy),
        )
        for attempt in range(self.options.attempts):
            try:
                data = await self._send(request, body)
            except RecoverableError as exc:
                if attempt + 1 == self.options.attempts:
                    raise
                delay = _backoff(self.options.backoff_s, attempt, exc)
                log.debug("inference request failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            return self.adapter.read(data, policy)
        raise AssertionError("unreachable: attempts >= 1")

    async def _send(self, request: Request, body: dict[str, Any]) -> Completion:
        await self._servers.refresh()
        async with self._slots:
            server = self._servers.pick()
            url, breaker = server.url, server.breaker
            self.requests_sent += 1
            try:
                async with asyncio.timeout(self.options.timeout_s):
                    response, content = await self._post(
                        url + openai_wire.path(request), body, server.headers, request
                    )
                data = openai_wire.completion(_checked(response, content), request.endpoint)
            except (openai_wire.MalformedResponse, httpx.DecodingError) as exc:
                breaker.failure()
                raise RecoverableError(f"{url}: unreadable response: {exc}") from exc
            except RecoverableError:
                breaker.failure()
                raise
            except (FatalError, RejectedInput):
                breaker.success()  # the server answered; the request was at fault
                raise
            except (httpx.RequestError, TimeoutError) as exc:
                breaker.failure()
                raise RecoverableError(f"{url}: {type(exc).__name__}: {exc}") from exc
            except asyncio.CancelledError:
                breaker.cancelled()  # a cancelled probe must not hold the circuit half-open
                raise
            except Exception:
                # Whatever else went wrong, a probe left "out" would keep the circuit half-open
                # for good: every later request would fail fast against a healthy server.
                breaker.failure()
                raise
            finally:
                self._servers.done(server)
            breaker.success()
            return data

    async def _post(
        self, url: str, body: dict[str, Any], headers: dict[str, str], request: Request
    ) -> tuple[httpx.Response, bytes]:
        """The answer to one request and its body, the body read no further than an answer of
        ``request.max_tokens`` can take, so that no server answer can outgrow a worker."""
        limit = answer_limit(request)
        async with self._client.stream("POST", url, json=body, headers=headers) as response:
            content = bytearray()
            async for chunk in response.aiter_bytes():  # decoded: a gzip bomb counts in full
                content += chunk
                if len(content) > limit:
                    raise openai_wire.MalformedResponse(
                        f"HTTP {response.status_code}: an answer over {limit:,} bytes, more "
                        f"than {request.max_tokens} tokens can take"
                    )
            return response, bytes(content)


def answer_limit(request: Request) -> int:
    """The most bytes a well-formed answer to ``request`` can take: its JSON frame and error
    text, then each token with its logprob alternatives, generously escaped."""
    per_token = _TOKEN_BYTES * (1 + (request.top_logprobs or 0))
    return _ANSWER_FRAME_BYTES + request.max_tokens * per_token


class RetryableStatus(RecoverableError):
    """An HTTP status a retry may fix, with the server's Retry-After when it sent one."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _checked(response: httpx.Response, content: bytes) -> Any:
    """The JSON body of a 2xx answer; the right error kind for anything else."""
    status = response.status_code
    where = f"{response.request.url}: HTTP {status}"
    if status >= 400:
        said = content[:300].decode("utf-8", "replace")
        if status in _RETRYABLE_STATUS:
            raise RetryableStatus(f"{where}: {said}", _retry_after(response))
        if status in _REFUSED_INPUT_STATUS:
            raise RejectedInput(f"{where}: {said}")
        raise FatalError(f"{where}: {said}")
    try:
        return orjson.loads(content)  # nesting past its bound is a JSONDecodeError
    except orjson.JSONDecodeError as exc:
        raise openai_wire.MalformedResponse(f"{where}: not JSON: {exc}") from exc


def _first_error(failed: ExceptionGroup[Exception]) -> Exception:
    """The error to report for a batch: a fatal one first, so the pipeline does not retry it."""
    errors = list(failed.exceptions)
    for kind in (FatalError, RejectedInput, ModfleetError):
        for error in errors:
            if isinstance(error, kind):
                return error
    return failed


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _backoff(base_s: float, attempt: int, exc: Exception) -> float:
    # Full jitter: workers that failed together do not come back together.
    delay = random.uniform(0.0, min(_BACKOFF_CAP_S, base_s * 2**attempt))
    retry_after = exc.retry_after if isinstance(exc, RetryableStatus) else None
    return max(delay, min(_BACKOFF_CAP_S, retry_after)) if retry_after else delay


def _client(options: HttpOptions) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    size = options.max_in_flight
    return httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(options.timeout_s),
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
    )
