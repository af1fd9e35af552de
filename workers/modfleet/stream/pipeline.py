"""One micro-batch, post -> decision: decode, normalise, cache, classify, decide, build messages.

Nothing here knows faust: the agent hands in records and sends back what ``process`` returns,
which is exactly one outcome per record (a decision, possibly with an escalation, or a
dead-letter), so that no post is lost however a step fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from modfleet.cache import VerdictCache, cache_key
from modfleet.emit.messages import (
    Decided,
    Outbound,
    Topics,
    carried_headers,
    dead_letter_message,
    decision_message,
    escalation_message,
    new_trace_id,
    trace_id_of,
)
from modfleet.errors import FatalError, RecoverableError
from modfleet.inference.base import Classifier, Verdict
from modfleet.ingest.decode import Post, Record, Rejection, decode
from modfleet.metrics import Metrics
from modfleet.normalise import Normalised, normalise
from modfleet.policy import Judgement, Policy
from modfleet.telemetry.tracing import BatchTrace, Headers, Tracing

log = logging.getLogger(__name__)
_UNREADABLE = Judgement(action="escalate", labels=(), per_category={})

_UNTRACED = Tracing(None).batch()


def _traced(trace: BatchTrace, record: Record) -> tuple[str, Headers]:
    """The post's trace id and its outputs' headers, under the post's span when tracing."""
    trace_id, headers = trace.post(record, carried_headers(record))
    return trace_id or trace_id_of(record) or new_trace_id(), headers


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int
    backoff_s: float
    timeout_s: float = 30.0  # one inference call; a hung backend must not wedge the worker

    def delay(self, attempt: int) -> float:
        return float(self.backoff_s * (2**attempt))


@dataclass(frozen=True, slots=True)
class _Item:
    """A valid post on its way through the batch."""

    record: Record
    post: Post
    norm: Normalised
    key: str
    trace_id: str
    headers: Headers  # for the post's outputs: content type and trace context


@dataclass(frozen=True, slots=True)
class _Verdicts:
    found: dict[str, Verdict]
    cached: frozenset[str]
    failed: dict[str, str]  # cache key -> why inference gave up on that text


class Pipeline:
    def __init__(
        self,
        policy: Policy,
        classifier: Classifier,
        cache: VerdictCache,
        metrics: Metrics,
        topics: Topics,
        retry: Retry,
    ) -> None:
        self.policy = policy
        self.classifier = classifier
        self.cache = cache
        self.metrics = metrics
        self.topics = topics
        self.retry = retry
        self._inference_seconds = metrics.inference_seconds.labels(
            backend=type(classifier).__name__, model=classifier.model_id
        )

    async def process(
        self, records: Sequence[Record], trace: BatchTrace = _UNTRACED
    ) -> list[Outbound]:
        self.metrics.posts_consumed.inc(len(records))
        self.metrics.batch_size.observe(len(records))
        out: list[Outbound] = []
        items: list[_Item] = []
        with trace.stage("validate"):
            for record in records:
                decoded = decode(record)
                if isinstance(decoded, Rejection):
                    out.append(self._dead_letter(record, decoded, *_traced(trace, record)))
                else:
                    items.append(self._prepare(record, decoded, trace))
        verdicts = await self._verdicts(items, trace)
        with trace.stage("policy"):
            for item in items:
                out.extend(self._outcome(item, verdicts))
        return out

    def dead_letter_all(self, records: Sequence[Record], why: str) -> list[Outbound]:
        """The last resort for a batch that failed in a way the steps above did not foresee."""
        return [self._dead_letter(r, Rejection("internal_error", why)) for r in records]

    def _prepare(self, record: Record, post: Post, trace: BatchTrace) -> _Item:
        norm = normalise(post.text, self.policy.limits.max_text_chars)
        p = self.policy
        key = cache_key(p.id, p.version, self.classifier.model_id, norm.content_hash)
        return _Item(record, post, norm, key, *_traced(trace, record))

    async def _verdicts(self, items: Sequence[_Item], trace: BatchTrace) -> _Verdicts:
        texts = {item.key: item.norm.text for item in items}  # one entry per distinct text
        keys = list(texts)
        with trace.stage("cache lookup"):
            cached = await self.cache.get_many(keys)
        found = {k: v for k, v in zip(keys, cached, strict=True) if v is not None}
        misses = [k for k in keys if k not in found]
        self._count_cache(items, found, len(misses))
        with trace.stage("inference"):
            fresh, failed = await self._classify(misses, [texts[k] for k in misses])
        with trace.stage("cache write"):
            # An unreadable answer is asked again next time, never served from the cache.
            await self.cache.put_many({k: v for k, v in fresh.items() if not v.unparseable})
        return _Verdicts({**found, **fresh}, frozenset(found), failed)

    def _count_cache(self, items: Sequence[_Item], found: dict[str, Verdict], misses: int) -> None:
        hits = sum(1 for item in items if item.key in found)
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(misses)
        self.metrics.inflight_dedup.inc(len(items) - hits - misses)

    async def _classify(
        self, keys: list[str], texts: list[str]
    ) -> tuple[dict[str, Verdict], dict[str, str]]:
        if not keys:
            return {}, {}
        try:
            verdicts = await self._with_retries(texts)
        except Exception as exc:  # noqa: BLE001 - any backend failure; the posts are isolated next
            log.warning("inference failed for a batch of %d texts (%s); isolating", len(texts), exc)
            return await self._isolate(keys, texts)
        return dict(zip(keys, verdicts, strict=True)), {}

    async def _with_retries(self, texts: list[str]) -> list[Verdict]:
        for attempt in range(self.retry.attempts):
            try:
                return await self._call(texts)
            except FatalError:
                raise
            except Exception as exc:
                if attempt + 1 == self.retry.attempts:
                    raise
                self.metrics.inference_retries.inc()
                log.warning("inference attempt %d failed (%s); retrying", attempt + 1, exc)
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable: attempts >= 1")

    async def _call(self, texts: list[str]) -> list[Verdict]:
        started = time.perf_counter()
        self.metrics.inference_in_flight.inc()
        try:
            verdicts = await asyncio.wait_for(
                self.classifier.classify(texts, self.policy), self.retry.timeout_s
            )
        except TimeoutError as exc:
            raise RecoverableError(f"inference took over {self.retry.timeout_s} s") from exc
        finally:
            self.metrics.inference_in_flight.dec()
        self._inference_seconds.observe(time.perf_counter() - started)
        if len(verdicts) != len(texts):
            raise FatalError(f"backend returned {len(verdicts)} verdicts for {len(texts)} texts")
        return verdicts

    async def _isolate(
        self, keys: list[str], texts: list[str]
    ) -> tuple[dict[str, Verdict], dict[str, str]]:
        """Classify one text at a time, so one poison post cannot take its batch with it."""
        found: dict[str, Verdict] = {}
        failed: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            try:
                found[key] = (await self._call([text]))[0]
            except Exception as exc:  # noqa: BLE001 - recorded as the post's dead-letter reason
                failed[key] = f"{type(exc).__name__}: {exc}"
        return found, failed

    def _outcome(self, item: _Item, verdicts: _Verdicts) -> list[Outbound]:
        if item.key in verdicts.failed:
            why = Rejection(
                "inference_failed",
                f"model {self.classifier.model_id} failed after "
                f"{self.retry.attempts} attempts: {verdicts.failed[item.key]}",
                post_id=item.post.post_id,
                tenant=item.post.tenant,
            )
            return [self._dead_letter(item.record, why, item.trace_id, item.headers)]
        decided = self._decide(item, verdicts.found[item.key], item.key in verdicts.cached)
        model_id = self.classifier.model_id
        out = [decision_message(decided, self.policy, model_id, self.topics.decisions)]
        self.metrics.decisions.labels(action=decided.judgement.action).inc()
        for category in decided.judgement.labels:
            self.metrics.decision_labels.labels(category=category).inc()
        if decided.judgement.action == "escalate":
            unread = decided.verdict.unparseable
            reason = "unparseable_verdict" if unread else "policy_threshold"
            out.append(
                escalation_message(decided, self.policy, model_id, self.topics.escalations, reason)
            )
            self.metrics.escalations.labels(reason=reason).inc()
            log.info(
                "escalated post %s for review",
                decided.post_id,
                extra={"trace_id": decided.trace_id, "labels": list(decided.judgement.labels)},
            )
        return out

    def _decide(self, item: _Item, verdict: Verdict, from_cache: bool) -> Decided:
        scores = verdict.policy_scores(self.policy)
        # A model answer that could not be read is never "allow": a person reviews the post.
        judgement = _UNREADABLE if verdict.unparseable else self.policy.decide(scores)
        return Decided(
            post_id=item.post.post_id,
            tenant=item.post.tenant,
            original_text=item.post.text,
            content_hash=item.norm.content_hash,
            truncated=item.norm.truncated,
            verdict=verdict,
            scores=scores,
            judgement=judgement,
            from_cache=from_cache,
            produced_at=item.record.timestamp,
            trace_id=item.trace_id,
            headers=item.headers,
        )

    def _dead_letter(
        self, record: Record, why: Rejection, trace_id: str | None = None, headers: Headers = ()
    ) -> Outbound:
        self.metrics.dead_letters.labels(reason=why.code).inc()
        # The reason's message can quote the offending value, which may be post text: it goes to
        # the dead-letter record, not to the logs.
        log.info(
            "dead-lettered %s[%d]@%d: %s at %s",
            record.topic,
            record.partition,
            record.offset,
            why.code,
            why.field if why.field is not None else "record",
            extra={"trace_id": trace_id, "post_id": why.post_id, "reason": why.code},
        )
        headers = headers or carried_headers(record)
        return dead_letter_message(record, why, self.topics.dead_letter, trace_id, headers)
