"""One micro-batch, post -> decision: decode, normalise, cache, classify, decide, build messages.

Nothing here knows faust: the agent hands in records and sends back what ``process`` returns,
which is exactly one outcome per record (a decision, possibly with an escalation, or a
dead-letter), so that no post is lost however a step fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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
from modfleet.inference.base import Classifier, Verdict
from modfleet.ingest.decode import Post, Record, Rejection, decode
from modfleet.metrics import Metrics
from modfleet.normalise import Normalised, normalise
from modfleet.policy import Judgement, Policy
from modfleet.policy.packs import PolicySet
from modfleet.stream.infer import Inference, Retry
from modfleet.telemetry.tracing import BatchTrace, Headers, Tracing

log = logging.getLogger(__name__)
_UNREADABLE = Judgement(action="escalate", labels=(), per_category={})

_UNTRACED = Tracing(None).batch()


def _traced(trace: BatchTrace, record: Record) -> tuple[str, Headers]:
    """The post's trace id and its outputs' headers, under the post's span when tracing."""
    trace_id, headers = trace.post(record, carried_headers(record))
    return trace_id or trace_id_of(record) or new_trace_id(), headers


@dataclass(frozen=True, slots=True)
class _Item:
    """A valid post on its way through the batch."""

    record: Record
    post: Post
    norm: Normalised
    key: str
    trace_id: str
    headers: Headers  # for the post's outputs: content type and trace context
    policy: Policy
    shadow: bool = False  # evaluated for comparison only: its decision is never enforced


@dataclass(frozen=True, slots=True)
class _Verdicts:
    found: dict[str, Verdict]
    cached: frozenset[str]
    failed: dict[str, str]  # cache key -> why inference gave up on that text


class Pipeline:
    def __init__(
        self,
        policies: PolicySet | Policy,
        classifier: Classifier,
        cache: VerdictCache,
        metrics: Metrics,
        topics: Topics,
        retry: Retry,
    ) -> None:
        # Swapped whole by a hot reload; each batch reads it once, so a batch sees one version.
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet.single(policies)
        self.classifier = classifier
        self.cache = cache
        self.metrics = metrics
        self.topics = topics
        self.retry = retry
        self.inference = Inference(classifier, retry, metrics)

    async def process(
        self, records: Sequence[Record], trace: BatchTrace = _UNTRACED
    ) -> list[Outbound]:
        self.metrics.posts_consumed.inc(len(records))
        self.metrics.batch_size.observe(len(records))
        policies = self.policies
        out: list[Outbound] = []
        items: list[_Item] = []
        with trace.stage("validate"):
            for record in records:
                decoded = decode(record)
                if isinstance(decoded, Rejection):
                    out.append(self._dead_letter(record, decoded, *_traced(trace, record)))
                else:
                    items.extend(self._prepare(record, decoded, trace, policies))
        verdicts = await self._verdicts(items, trace)
        with trace.stage("policy"):
            for item in items:
                out.extend(self._outcome(item, verdicts))
        return out

    def dead_letter_all(self, records: Sequence[Record], why: str) -> list[Outbound]:
        """The last resort for a batch that failed in a way the steps above did not foresee."""
        return [self._dead_letter(r, Rejection("internal_error", why)) for r in records]

    def _prepare(
        self, record: Record, post: Post, trace: BatchTrace, policies: PolicySet
    ) -> list[_Item]:
        """The post under its tenant's live policy, and under each shadow policy for it."""
        trace_id, headers = _traced(trace, record)
        live = policies.live_for(post.tenant)
        items = [self._item(record, post, trace_id, headers, live, False)]
        for shadow in policies.shadows_for(post.tenant):
            items.append(self._item(record, post, trace_id, headers, shadow, True))
        return items

    def _item(
        self, record: Record, post: Post, trace_id: str, headers: Headers, p: Policy, shadow: bool
    ) -> _Item:
        norm = normalise(post.text, p.limits.max_text_chars)
        key = cache_key(p.id, p.version, self.classifier.model_id, norm.content_hash)
        return _Item(record, post, norm, key, trace_id, headers, p, shadow)

    async def _verdicts(self, items: Sequence[_Item], trace: BatchTrace) -> _Verdicts:
        # One entry per distinct (text, policy); the policy goes with it, as an LLM reads it.
        jobs = {item.key: item for item in items}
        keys = list(jobs)
        with trace.stage("cache lookup"):
            cached = await self.cache.get_many(keys)
        found = {k: v for k, v in zip(keys, cached, strict=True) if v is not None}
        self._count_cache([i for i in items if not i.shadow], found)
        failed: dict[str, str] = {}
        fresh: dict[str, Verdict] = {}
        with trace.stage("inference"):
            for policy, misses in _by_policy(jobs, found):
                texts = [jobs[k].norm.text for k in misses]
                results = await self.inference.classify(policy, misses, texts)
                fresh.update(results.found)
                failed.update(results.failed)
        with trace.stage("cache write"):
            # An unreadable answer is asked again next time, never served from the cache.
            await self.cache.put_many({k: v for k, v in fresh.items() if not v.unparseable})
        return _Verdicts({**found, **fresh}, frozenset(found), failed)

    def _count_cache(self, live: Sequence[_Item], found: dict[str, Verdict]) -> None:
        hits = sum(1 for item in live if item.key in found)
        misses = len({item.key for item in live if item.key not in found})
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(misses)
        self.metrics.inflight_dedup.inc(len(live) - hits - misses)

    def _outcome(self, item: _Item, verdicts: _Verdicts) -> list[Outbound]:
        if item.shadow:
            return self._shadow_outcome(item, verdicts)
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
        model_id, policy = self.classifier.model_id, item.policy
        out = [decision_message(decided, policy, model_id, self.topics.decisions)]
        self.metrics.decisions.labels(action=decided.judgement.action).inc()
        for category in decided.judgement.labels:
            self.metrics.decision_labels.labels(category=category).inc()
        if decided.judgement.action == "escalate":
            unread = decided.verdict.unparseable
            reason = "unparseable_verdict" if unread else "policy_threshold"
            out.append(
                escalation_message(decided, policy, model_id, self.topics.escalations, reason)
            )
            self.metrics.escalations.labels(reason=reason).inc()
            log.info(
                "escalated post %s for review",
                decided.post_id,
                extra={"trace_id": decided.trace_id, "labels": list(decided.judgement.labels)},
            )
        return out

    def _shadow_outcome(self, item: _Item, verdicts: _Verdicts) -> list[Outbound]:
        """A shadow decision, to the shadow topic only; the live decision settles the post."""
        policy = item.policy
        if item.key in verdicts.failed:
            log.warning("shadow policy %s could not score a post", policy.id)
            return []
        decided = self._decide(item, verdicts.found[item.key], item.key in verdicts.cached)
        action = decided.judgement.action
        self.metrics.shadow_decisions.labels(policy=policy.id, action=action).inc()
        topic = self.topics.shadow_decisions
        return [decision_message(decided, policy, self.classifier.model_id, topic)]

    def _decide(self, item: _Item, verdict: Verdict, from_cache: bool) -> Decided:
        scores = verdict.policy_scores(item.policy)
        # A model answer that could not be read is never "allow": a person reviews the post.
        judgement = _UNREADABLE if verdict.unparseable else item.policy.decide(scores)
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


def _by_policy(
    jobs: Mapping[str, _Item], found: Mapping[str, Verdict]
) -> list[tuple[Policy, list[str]]]:
    """Cache misses grouped by policy (by identity: packs hold dicts, so they do not hash)."""
    groups: dict[int, tuple[Policy, list[str]]] = {}
    for key, item in jobs.items():
        if key not in found:
            groups.setdefault(id(item.policy), (item.policy, []))[1].append(key)
    return list(groups.values())
