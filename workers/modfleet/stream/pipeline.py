"""One micro-batch, post -> decision: decode, normalise, cache, classify, decide, build messages.

Nothing here knows faust: the agent hands in records and sends back what ``process`` returns,
which is exactly one outcome per record (a decision, possibly with an escalation, or a
dead-letter), so that no post is lost however a step fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace

from modfleet.cache import VerdictCache
from modfleet.carrier import carrier
from modfleet.emit.budget import DEFAULT_BUDGET, Budget
from modfleet.emit.messages import (
    Decided,
    Outbound,
    PackFields,
    Topics,
    decision_message,
    escalation_message,
    escalation_reason,
    new_trace_id,
    trace_context,
)
from modfleet.inference.base import Classifier, Verdict
from modfleet.inference.routing import Backends
from modfleet.ingest.decode import DEFAULT_MAX_POST_BYTES, Post, Record, Rejection, decode
from modfleet.metrics import Metrics
from modfleet.normalise import Normalised, TextFormat
from modfleet.policy import Judgement, Policy
from modfleet.policy.packs import PolicySet
from modfleet.stream.dead_letters import DeadLetters
from modfleet.stream.degrade import BackendFactory, Degrade
from modfleet.stream.infer import BackendDown, Inference, Retry
from modfleet.stream.render import Place, Renderer, read_post, render_posts
from modfleet.stream.tenancy import Audiences, by_audience, tenant_head
from modfleet.stream.windows import Windows
from modfleet.telemetry.tracing import BatchTrace, Headers, Tracing

log = logging.getLogger(__name__)
_LARGE_RECORD = 64 * 1024
_UNREADABLE = Judgement(action="escalate", labels=(), per_category={})

_UNTRACED = Tracing(None).batch()
_PACKS_KEPT = 64
_PackParts = tuple[Policy, int, int, TextFormat, dict[str, str], PackFields, str]


def _traced(trace: BatchTrace, record: Record) -> tuple[str, Headers]:
    """The post's trace id and its outputs' headers, under the post's span when tracing."""
    carried_id, carried = trace_context(record)
    trace_id, headers = trace.post(record, carried)
    return trace_id or carried_id or new_trace_id(), headers


@carrier
class _Item:
    """A valid post on its way through the batch."""

    record: Record
    post: Post
    norm: Normalised
    key: str
    trace_id: str
    headers: Headers  # for the post's outputs: content type and trace context
    policy: Policy
    fields: PackFields  # the pack's, with its backend's model id, for the post's messages
    shadow: bool = False  # evaluated for comparison only: its decision is never enforced


@carrier
class _Verdicts:
    found: dict[str, Verdict]
    cached: frozenset[str]
    failed: dict[str, str]  # cache key -> why inference gave up on that text


class Pipeline:
    def __init__(
        self,
        policies: PolicySet | Policy,
        classifier: Classifier | Backends,
        cache: VerdictCache,
        metrics: Metrics,
        topics: Topics,
        retry: Retry,
        budget: Budget = DEFAULT_BUDGET,
        max_post_bytes: int = DEFAULT_MAX_POST_BYTES,
        fallbacks: BackendFactory | None = None,
    ) -> None:
        # Swapped whole by a hot reload; each batch reads it once, so a batch sees one version.
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet.single(policies)
        self.backends = (
            classifier if isinstance(classifier, Backends) else Backends.fixed(classifier)
        )
        self.cache = cache
        self.metrics = metrics
        self.topics = topics
        self.retry = retry
        self.budget = budget
        self.dead_letters = DeadLetters(topics.dead_letter, budget)
        self.max_post_bytes = max_post_bytes
        self._inference: dict[int, Inference] = {}
        self._parts: dict[int, _PackParts] = {}
        self._audiences = Audiences()
        self.degrade = Degrade(metrics, retry, fallbacks)
        self.renderer = Renderer(metrics=metrics)  # its child starts with the first HTML post

    @property
    def classifier(self) -> Classifier:
        """The one classifier of a pipeline built with one (tests, plugins)."""
        if self.backends.default is None:
            raise AttributeError("this pipeline routes each pack to its own backend")
        return self.backends.default

    def check(self, policies: Iterable[Policy]) -> None:
        """Build every pack's backend and fallback now, and start the HTML renderer if a pack
        reads HTML: a pack that names a model (or a format) this worker cannot run is refused
        when it is loaded, not on its first post or its model's outage."""
        policies = list(policies)
        self.backends.check(policies)
        self.degrade.check(policies)
        if any(p.text.format == "html" for p in policies):
            self.renderer.check()

    async def probe(self, policies: Iterable[Policy]) -> None:
        """Ask each pack's model to score a plain text: FatalError if one refuses (a model its
        server does not serve), which no post could change. A model that is down is not a
        refusal: the pack's ``on_model_down`` is for that."""
        for policy in policies:
            if not await self.inference_for(policy).answers(policy):
                log.warning("pack %s: its model is not answering now", policy.label)

    def inference_for(self, policy: Policy) -> Inference:
        classifier = self.backends.for_policy(policy)
        found = self._inference.get(id(classifier))
        if found is None:
            found = self._inference[id(classifier)] = Inference(
                classifier, self.retry, self.metrics
            )
        return found

    async def process(
        self,
        records: Sequence[Record],
        trace: BatchTrace = _UNTRACED,
        writes: list[asyncio.Task[None]] | None = None,
    ) -> list[Outbound]:
        """Exactly one outcome per record (a decision, maybe with an escalation, or a
        dead-letter), each within the byte budget. Metrics are counted by ``count_delivered``
        once the outcomes are delivered, so that a retried batch is not counted twice.

        With ``writes``, the new verdicts' cache write is started and added there rather than
        awaited, so that the decisions do not wait for it: the caller awaits it (before it
        acks the batch)."""
        policies = self.policies
        out: list[Outbound] = []
        items: list[_Item] = []
        posts: list[tuple[Record, Post]] = []
        with trace.stage("validate"):
            for record in records:
                try:
                    decoded = decode(record, self.max_post_bytes)
                    if isinstance(decoded, Rejection):
                        out.append(self.dead_letters.of(record, decoded, *_traced(trace, record)))
                    else:
                        posts.append((record, decoded))
                except Exception as exc:  # noqa: BLE001 - one record costs one record
                    out.append(self.dead_letters.internal_error(record, "reading the post", exc))
                await _let_others_run(record)
        renderings = await render_posts(self.renderer, [p for _, p in posts], policies, trace)
        with trace.stage("validate"):
            for place, (record, post) in enumerate(posts):
                try:
                    items.extend(self._prepare(record, post, trace, policies, (renderings, place)))
                except Exception as exc:  # noqa: BLE001 - one record costs one record
                    out.append(
                        self.dead_letters.internal_error(record, "reading the post", exc, post)
                    )
                await _let_others_run(record)
        verdicts = await self._verdicts(items, trace, writes)
        with trace.stage("policy"):
            for item in items:
                try:
                    out.extend(self._outcome(item, verdicts))
                except Exception as exc:  # noqa: BLE001 - one record costs one record
                    if not item.shadow:
                        out.append(
                            self.dead_letters.internal_error(
                                item.record, "deciding the post", exc, item.post
                            )
                        )
        return [self.dead_letters.fitted(m) for m in out]

    async def process_isolated(
        self,
        records: Sequence[Record],
        trace: BatchTrace = _UNTRACED,
        writes: list[asyncio.Task[None]] | None = None,
    ) -> list[Outbound]:
        """Each record on its own, for a batch that failed as a whole: whatever broke costs
        the records it broke on, never their neighbours. A backend found down meanwhile is no
        record's fault: it is raised, for the caller to hold the batch."""
        out: list[Outbound] = []
        for record in records:
            try:
                out.extend(await self.process([record], trace, writes))
            except BackendDown:
                raise
            except Exception as exc:  # noqa: BLE001 - that record alone is dead-lettered
                out.append(self.dead_letters.internal_error(record, "processing the post", exc))
        return out

    def refuse(self, record: Record, why: Rejection) -> Outbound:
        """The dead-letter of ``record``, unread, for ``why``."""
        return self.dead_letters.fitted(self.dead_letters.of(record, why))

    def undeliverable(self, message: Outbound) -> Outbound | None:
        """The minimal dead-letter that stands for a message the broker refused for good."""
        return self.dead_letters.stand_in(message)

    def _prepare(
        self, record: Record, post: Post, trace: BatchTrace, policies: PolicySet, at: Place
    ) -> list[_Item]:
        """The post under its tenant's live policy, and under each shadow policy for it."""
        trace_id, headers = _traced(trace, record)
        live = policies.live_for(post.tenant)
        items = [self._item(record, post, trace_id, headers, live, False, at)]
        for shadow in policies.shadows_for(post.tenant):
            items.append(self._item(record, post, trace_id, headers, shadow, True, at))
        return items

    def _item(
        self,
        record: Record,
        post: Post,
        trace_id: str,
        headers: Headers,
        p: Policy,
        shadow: bool,
        at: Place,
    ) -> _Item:
        _, max_chars, windows, text_format, heads, fields, scope = self._pack_parts(p)
        norm = read_post(post.text, max_chars, windows, text_format, at)
        head = heads.get(post.tenant) or tenant_head(heads, p, scope, post.tenant)
        key = head + norm.content_hash
        return _Item(record, post, norm, key, trace_id, headers, p, fields, shadow)

    def _pack_parts(self, p: Policy) -> _PackParts:
        """What every post under ``p`` shares (its text's limits and format, its cache keys'
        heads by tenant, its messages' pack fields with its backend's model id, its backend's
        cache scope), worked out once per pack, not once per post."""
        found = self._parts.get(id(p))
        if found is None or found[0] is not p:  # by identity: a reloaded pack is another
            if len(self._parts) >= _PACKS_KEPT:  # reloads leave old packs behind
                self._parts.clear()
            backend = self.backends.for_policy(p)
            fields = PackFields.of(p, backend.model_id)
            scope = backend.cache_scope()
            chars, windows = p.limits.max_text_chars, p.limits.max_windows
            found = self._parts[id(p)] = (p, chars, windows, p.text.format, {}, fields, scope)
        return found

    async def _verdicts(
        self, items: Sequence[_Item], trace: BatchTrace, writes: list[asyncio.Task[None]] | None
    ) -> _Verdicts:
        # One entry per distinct (text, policy); the policy goes with it, as an LLM reads it.
        jobs = {item.key: item for item in items}
        keys = list(jobs)
        with trace.stage("cache lookup"):
            cached = await self.cache.get_many(keys, [jobs[k].policy for k in keys])
        found = {k: v for k, v in zip(keys, cached, strict=True) if v is not None}
        self._count_cache([i for i in items if not i.shadow], found)
        failed: dict[str, str] = {}
        fresh: dict[str, Verdict] = {}
        with trace.stage("inference"):
            for policy, tenant, misses in by_audience(jobs, found, self._apart):
                read = Windows(misses, [jobs[k].norm.text for k in misses], policy.limits)
                self.metrics.text_windows.inc(read.extra)
                inference = self.inference_for(policy)
                asked = self._audiences.of(policy, tenant) if tenant is not None else policy
                results = await self.degrade.classify(inference, asked, read.keys, read.texts)
                results = read.fold(results, policy)
                fresh.update(results.found)
                failed.update(results.failed)
        # An unreadable answer is asked again next time, never served from the cache; nor is a
        # verdict given while the pack's model was down.
        keep = {k: v for k, v in fresh.items() if _cacheable(v)}
        packs = {k: jobs[k].policy for k in keep}
        if writes is None:
            with trace.stage("cache write"):
                await self.cache.put_many(keep, packs)
        elif keep:  # never raises: a failed write is counted and logged by the cache
            writes.append(asyncio.ensure_future(self.cache.put_many(keep, packs)))
        return _Verdicts({**found, **fresh}, frozenset(found), failed)

    def _apart(self, policy: Policy) -> bool:
        return self.backends.for_policy(policy).cross_post_cache

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
                f"model {item.fields.model_id} failed after "
                f"{self.retry.attempts} attempts: {verdicts.failed[item.key]}",
                post_id=item.post.post_id,
                tenant=item.post.tenant,
            )
            return [self.dead_letters.of(item.record, why, item.trace_id, item.headers)]
        decided = self._decide(item, verdicts.found[item.key], item.key in verdicts.cached)
        fields = item.fields
        out = [decision_message(decided, fields, self.topics.decisions)]
        if decided.judgement.action == "escalate":
            reason = escalation_reason(decided.verdict)
            topic = self.topics.escalations
            out.append(escalation_message(decided, fields, topic, reason, self.budget))
        return out

    def _shadow_outcome(self, item: _Item, verdicts: _Verdicts) -> list[Outbound]:
        """A shadow decision, to the shadow topic only; the live decision settles the post."""
        policy = item.policy
        if item.key in verdicts.failed:
            log.warning("shadow policy %s could not score a post", policy.id)
            return []
        decided = self._decide(item, verdicts.found[item.key], item.key in verdicts.cached)
        topic = self.topics.shadow_decisions
        shadow = decision_message(decided, item.fields, topic)
        return [replace(shadow, kind="shadow_decision", code=policy.id, source=None)]

    def _decide(self, item: _Item, verdict: Verdict, from_cache: bool) -> Decided:
        scores = verdict.policy_scores(item.policy)
        # A model answer that could not be read is never "allow": a person reviews the post.
        unread = verdict.unparseable or verdict.model_down
        judgement = _UNREADABLE if unread else item.policy.decide(scores)
        post, norm, record = item.post, item.norm, item.record
        return Decided(
            post.post_id,
            post.tenant,
            post.text,
            norm.content_hash,
            norm.truncated or verdict.cut,
            verdict,
            scores,
            judgement,
            from_cache,
            record.timestamp,
            item.trace_id,
            item.headers,
            record,
        )


def _cacheable(verdict: Verdict) -> bool:
    return not (verdict.unparseable or verdict.model_down or verdict.fallback_from or verdict.cut)


async def _let_others_run(record: Record) -> None:
    if record.value is not None and len(record.value) > _LARGE_RECORD:
        # Reading a large hostile record takes tens of ms: let the heartbeat and the fetcher
        # run between such records rather than after the whole batch.
        await asyncio.sleep(0)
