"""``modfleet shadow report``: agreement of each shadow policy with the live one, per post."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from modfleet.kafka import consumer, unread
from modfleet.settings import Settings

log = logging.getLogger(__name__)
# What the comparison reads of a decision. Not the whole schema: older workers' decisions
# carry no tenant and are compared all the same.
_READ = {"post_id": str, "policy_id": str, "policy_version": str, "action": str, "labels": list}

Decision = Mapping[str, Any]


@dataclass(frozen=True)
class Difference:
    tenant: str | None  # None for a decision of a worker that did not record it
    post_id: str
    live: str
    shadow: str
    live_labels: tuple[str, ...]
    shadow_labels: tuple[str, ...]


@dataclass
class Comparison:
    """One shadow policy against live, over the posts both decided."""

    shadow_policy: str
    live_policies: set[str] = field(default_factory=set)
    compared: int = 0
    agreed: int = 0
    matrix: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    differences: list[Difference] = field(default_factory=list)

    @property
    def disagreed(self) -> int:
        return self.compared - self.agreed

    @property
    def agreement(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0


def compare(live: Iterable[Decision], shadow: Iterable[Decision]) -> list[Comparison]:
    """Join on (tenant, post id); a redelivered post counts once (its decisions are identical).

    A post id is unique only within its tenant, so two tenants' posts of one id are two posts.
    Older workers' decisions carry no tenant: they join only each other's.
    """
    live_by_post = {_post(d): d for d in live}
    per_policy: dict[str, Comparison] = {}
    seen: set[tuple[str, tuple[str | None, str]]] = set()
    for s in shadow:
        name = f"{s['policy_id']}@{s['policy_version']}"
        post = _post(s)
        key = (name, post)
        l_ = live_by_post.get(post)
        if l_ is None or key in seen:
            continue
        seen.add(key)
        _tally(per_policy.setdefault(name, Comparison(name)), l_, s)
    return sorted(per_policy.values(), key=lambda c: c.shadow_policy)


def _post(decision: Decision) -> tuple[str | None, str]:
    return decision.get("tenant"), decision["post_id"]


def _tally(c: Comparison, live: Decision, shadow: Decision) -> None:
    c.live_policies.add(f"{live['policy_id']}@{live['policy_version']}")
    c.compared += 1
    c.matrix[(live["action"], shadow["action"])] += 1
    if live["action"] == shadow["action"]:
        c.agreed += 1
        return
    c.differences.append(
        Difference(
            live.get("tenant"),
            live["post_id"],
            live["action"],
            shadow["action"],
            tuple(live["labels"]),
            tuple(shadow["labels"]),
        )
    )


async def read_decisions(
    settings: Settings, idle_s: float = 3.0, limit_s: float = 300.0
) -> tuple[list[Decision], list[Decision]]:
    """Every valid decision on the decisions and shadow topics, read until ``idle_s`` without a
    record; an invalid one is logged and left out (the topics take writes from any producer
    with access, and one record must not cost the report).

    Idleness, not end offsets, ends the read: some Kafka-compatible brokers report end offsets
    that are too low.
    """
    topics = (settings.decisions_topic, settings.shadow_decisions_topic)
    reader = consumer(settings, *topics, group_id=None, auto_offset_reset="earliest")
    live: list[Decision] = []
    shadow: list[Decision] = []
    started = last = time.monotonic()
    try:
        await reader.start()  # within the try: a start that fails still closes the client
        while time.monotonic() - last < idle_s and time.monotonic() - started < limit_s:
            batches = await reader.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                target = live if tp.topic == settings.decisions_topic else shadow
                for r in records:
                    decision = _decision(r)
                    if isinstance(decision, str):
                        log.warning(
                            "skipping %s[%d]@%d: %s", tp.topic, tp.partition, r.offset, decision
                        )
                    else:
                        target.append(decision)
                last = time.monotonic()
    finally:
        await reader.stop()
    return live, shadow


def _decision(record: Any) -> Decision | str:
    """A record's decision, or what makes it none."""
    why = unread(record)
    if why is not None:
        return why.message
    try:
        message = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(message, dict):
        return "not a JSON object"
    for name, kind in _READ.items():
        if not isinstance(message.get(name), kind):
            return f"no {name} ({kind.__name__})"
    if not isinstance(message.get("tenant"), str | None):
        return "tenant is not a string"
    return message


def render(comparisons: list[Comparison], show: int) -> str:
    if not comparisons:
        return "no shadow decisions with a matching live decision"
    lines: list[str] = []
    for c in comparisons:
        live = ", ".join(sorted(c.live_policies))
        lines += [
            f"shadow {c.shadow_policy} vs live {live}",
            f"  posts compared      {c.compared}",
            f"  agree               {c.agreed} ({100 * c.agreement:.1f}%)",
            f"  disagree            {c.disagreed}",
            "  live -> shadow      count",
            *(f"    {a:>8} -> {b:<8} {n}" for (a, b), n in sorted(c.matrix.items())),
        ]
        if c.differences:
            lines.append(f"  first {min(show, len(c.differences))} posts that differ:")
            lines += [
                f"    {_named(d)}: live {d.live} {list(d.live_labels)} / "
                f"shadow {d.shadow} {list(d.shadow_labels)}"
                for d in c.differences[:show]
            ]
    return "\n".join(lines)


def _named(d: Difference) -> str:
    # The tenant too: the post id alone does not find the post.
    return d.post_id if d.tenant is None else f"{d.tenant}/{d.post_id}"
