"""Inference for one micro-batch: bounded retries, a deadline per call, then per-post isolation.

A failure never decides a post. When posts fail alone while the backend answers a probe, they
come back in ``failed`` with the reason, and the pipeline dead-letters them. When the backend
does not answer at all, that is an outage, not a property of the posts: ``BackendDown`` goes up
to the agent, which stops taking records until the backend is back (or the pack's
``on_model_down`` says otherwise). A ``FatalError`` (a dead engine) is never retried. A
``RejectedInput`` (a prompt over the model's context length) is not retried either: the batch
is isolated at once, and a post the model refuses alone is asked again on its first half, and
so on (``CUTS`` times at most), then on its last part of the size taken, so that a post over the
model's context is still moderated on what fits, on the worse of the two (its verdict says
``cut``); only a post refused however short is dead-lettered.
A model that refuses the probe's plain text too is misconfigured (``FatalError``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from modfleet.errors import FatalError, RecoverableError, RejectedInput
from modfleet.inference.base import Classifier, Verdict, contract_checked
from modfleet.metrics import Metrics
from modfleet.policy import Policy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int
    backoff_s: float
    timeout_s: float = 30.0  # one inference call; a hung backend must not wedge the worker

    def delay(self, attempt: int) -> float:
        return float(self.backoff_s * (2**attempt))


# A text any healthy backend can score: asked when posts fail one by one, to tell a poison
# post from a backend that is down.
PROBE_TEXT = "hello, how was your day?"
# Halvings of a refused post's text: a twentieth of the pack's default 20,000 characters is
# still a post, and a refusal that outlives them is not about its length.
CUTS = 5
# Isolated posts asked at once: below the LLM backends' own bounds on requests in flight (64 and
# 256 by default), so that an isolated post's deadline runs while it is asked, not while it
# queues behind neighbours the backend hangs on.
ISOLATED_AT_ONCE = 16


class BackendDown(RecoverableError):
    """The backend failed a batch, each of its posts alone, and a probe: it is down. The
    worker holds the batch until it answers (``part`` names what it waits for)."""

    part = "the model"
    waits_for = "model"  # which of Metrics.down says so


@dataclass
class Results:
    found: dict[str, Verdict]
    failed: dict[str, str]  # cache key -> why inference gave up on that text


class Inference:
    def __init__(self, classifier: Classifier, retry: Retry, metrics: Metrics) -> None:
        self.classifier = classifier
        self.retry = retry
        self.metrics = metrics
        self._seconds = metrics.inference_seconds.labels(
            backend=type(classifier).__name__, model=classifier.model_id
        )

    async def classify(self, policy: Policy, keys: Sequence[str], texts: Sequence[str]) -> Results:
        """Verdicts for distinct texts under one policy (an LLM reads the policy as its prompt)."""
        if not keys:
            return Results({}, {})
        try:
            verdicts = await self._with_retries(policy, list(texts))
        except FatalError:
            raise
        except Exception as exc:
            # Probe first: a backend that is down would fail (or time out) once per post.
            if not await self.answers(policy):
                raise BackendDown(f"model {self.classifier.model_id} is not answering") from exc
            # By type: a server's refusal may quote the post (each dead letter says it in full).
            why = type(exc).__name__
            log.warning("inference failed for a batch of %d texts (%s); isolating", len(texts), why)
            return await self._isolate(policy, keys, texts)
        return Results(dict(zip(keys, verdicts, strict=True)), {})

    async def answers(self, policy: Policy) -> bool:
        """Whether the backend scores a plain text: if not, the failures are an outage."""
        try:
            await self._call(policy, [PROBE_TEXT])
        except FatalError:
            raise
        except RejectedInput as exc:
            # A model that refuses a greeting refuses every post: its settings are wrong (a
            # context shorter than the pack's prompt, a parameter it does not take), not a post.
            raise FatalError(
                f"model {self.classifier.model_id} refuses even a plain text: {exc}"
            ) from exc
        except Exception:  # noqa: BLE001 - any failure of the probe means "not answering"
            return False
        return True

    async def _with_retries(self, policy: Policy, texts: list[str]) -> list[Verdict]:
        for attempt in range(self.retry.attempts):
            try:
                return await self._call(policy, texts)
            except (FatalError, RejectedInput):
                raise  # no retry changes either: one stops the worker, the other isolates
            except Exception as exc:
                if attempt + 1 == self.retry.attempts:
                    raise
                self.metrics.inference_retries.inc()
                log.warning("inference attempt %d failed (%s); retrying", attempt + 1, exc)
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable: attempts >= 1")

    async def _call(self, policy: Policy, texts: list[str]) -> list[Verdict]:
        started = time.perf_counter()
        self.metrics.inference_in_flight.inc()
        try:
            # In this task, not wait_for's own: a task of its own would wait its turn on the
            # event loop behind every callback queued there, once to start and once to return.
            async with asyncio.timeout(self.retry.timeout_s):
                verdicts = await self.classifier.classify(texts, policy)
        except TimeoutError as exc:
            raise RecoverableError(f"inference took over {self.retry.timeout_s} s") from exc
        finally:
            self.metrics.inference_in_flight.dec()
        self._seconds.observe(time.perf_counter() - started)
        if len(verdicts) != len(texts):
            raise FatalError(f"backend returned {len(verdicts)} verdicts for {len(texts)} texts")
        # What the backend reports is checked here, once, before it is cached or decided on.
        known = policy.categories
        return [contract_checked(verdict, known) for verdict in verdicts]

    async def _isolate(self, policy: Policy, keys: Sequence[str], texts: Sequence[str]) -> Results:
        """Classify one text at a time, so one poison post cannot take its batch with it; side
        by side, so that n posts the backend hangs on cost the batch about one deadline, not n."""
        results = Results({}, {})
        at_once = asyncio.Semaphore(ISOLATED_AT_ONCE)

        async def alone(key: str, text: str) -> None:
            async with at_once:
                verdict, why = await self._alone(policy, text)
            if verdict is None:
                results.failed[key] = why
            else:
                results.found[key] = verdict

        try:
            async with asyncio.TaskGroup() as group:
                for key, text in zip(keys, texts, strict=True):
                    group.create_task(alone(key, text))
        except ExceptionGroup as failed:
            # Only a FatalError leaves alone(); the group cancelled the other posts' calls.
            raise failed.exceptions[0] from None
        return results

    async def _alone(self, policy: Policy, text: str) -> tuple[Verdict | None, str]:
        """The verdict on one text, or None and why inference gave up on it."""
        try:
            return (await self._call(policy, [text]))[0], ""
        except FatalError:
            raise
        except RejectedInput as exc:
            cut = await self._parts(policy, text)
            return cut, ("" if cut is not None else f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - recorded as the post's dead-letter reason
            return None, f"{type(exc).__name__}: {exc}"

    async def _parts(self, policy: Policy, text: str) -> Verdict | None:
        """The worse verdict on the longest first and last halves, quarters, ... of ``text``
        that the model takes: filler before (or after) the abuse must not hide it."""
        head = await self._fitting(policy, lambda size: text[:size], len(text))
        if head is None:
            return None
        size, first = head
        tail = await self._fitting(policy, lambda n: text[len(text) - n :], 2 * size)
        last = None if tail is None else tail[1]
        log.warning("a post the model refused was scored on parts of %d characters", size)
        return replace(_worse(first, last, policy), cut=True)

    async def _fitting(
        self, policy: Policy, part: Callable[[int], str], size: int
    ) -> tuple[int, Verdict] | None:
        """(size, verdict) of the longest ``part(size // 2)``, ``part(size // 4)``, ... the
        model takes, within ``CUTS`` halvings; None if it takes none (or fails otherwise)."""
        for _ in range(CUTS):
            size //= 2
            if not size:
                return None
            try:
                (verdict,) = await self._call(policy, [part(size)])
            except FatalError:
                raise
            except RejectedInput:
                continue
            except Exception:  # noqa: BLE001 - the post is dead-lettered with its refusal
                return None
            return size, verdict
        return None


def _worse(first: Verdict, last: Verdict | None, policy: Policy) -> Verdict:
    """The verdict to act on: an unreadable one, else the one with the higher top score."""
    if last is None or first.unparseable:
        return first
    if last.unparseable:
        return last
    return last if _top(last, policy) > _top(first, policy) else first


def _top(verdict: Verdict, policy: Policy) -> float:
    try:
        return max(verdict.policy_scores(policy).values(), default=0.0)
    except Exception:  # noqa: BLE001 - a verdict that cannot be decided: the other part's stands
        return -1.0
