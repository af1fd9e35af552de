"""`modfleet bench reviews`: the join's memory under many decisions, a share of them reviewed."""

from __future__ import annotations

import gc
import hashlib
import os
import time
from dataclasses import dataclass

from modfleet.reviews.agreement import Tally
from modfleet.reviews.join import Join

_CATEGORIES = ("harassment", "hate", "scam", "self_harm", "sexual", "violence")
_ACTIONS = ("allow", "allow", "allow", "label", "escalate", "remove")


@dataclass(frozen=True)
class JoinBench:
    decisions: int
    reviewed: int
    held: int
    rss_before_mib: float
    rss_after_mib: float
    seconds: float

    @property
    def bytes_per_decision(self) -> float:
        return (self.rss_after_mib - self.rss_before_mib) * 2**20 / self.decisions


def _rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(decisions: int = 100_000, reviewed_share: float = 0.1) -> JoinBench:
    """Decisions shaped like the worker's (ids, six category scores, labels, digest, model,
    stage), every ``1/reviewed_share``-th one reviewed, through one join."""
    join, tally = Join(max_decisions=decisions, ttl_s=14 * 86400), Tally()
    step = max(1, round(1 / reviewed_share)) if reviewed_share else decisions + 1
    digest = hashlib.sha256(b"pack").hexdigest()
    gc.collect()
    before = _rss_mib()
    started = time.perf_counter()
    for i in range(decisions):
        post_id = f"p_{i:012d}"
        decision_id = hashlib.sha256(post_id.encode()).hexdigest()
        action = _ACTIONS[i % len(_ACTIONS)]
        labels = [] if action == "allow" else [_CATEGORIES[i % len(_CATEGORIES)]]
        message = {
            "decision_id": decision_id,
            "post_id": post_id,
            "tenant": f"tenant-{i % 8}",
            "action": action,
            "labels": labels,
            "scores": {c: (i % 97) / 97 for c in _CATEGORIES},
            "policy_digest": digest,
            "model_id": "modfleet-embedded@2026.11.1",
            "stage": "llm" if i % 5 == 0 else "embedded",
        }
        tally.add(join.add_decision(message, float(i)))
        if i % step == 0:
            review = {
                "decision_id": decision_id,
                "post_id": post_id,
                "tenant": f"tenant-{i % 8}",
                "action": "allow" if i % 3 == 0 else _final(action),
                "verdicts": {c: c in labels for c in _CATEGORIES},
            }
            tally.add(join.add_review(review, float(i)))
    seconds = time.perf_counter() - started
    gc.collect()
    return JoinBench(decisions, tally.results["joined"], len(join), before, _rss_mib(), seconds)


def _final(action: str) -> str:
    return "remove" if action == "escalate" else action


def table(b: JoinBench) -> str:
    return "\n".join(
        [
            f"decisions            {b.decisions}",
            f"reviews joined       {b.reviewed}",
            f"decisions held       {b.held}",
            f"RSS before / after   {b.rss_before_mib:.1f} MiB / {b.rss_after_mib:.1f} MiB",
            f"join memory          {b.rss_after_mib - b.rss_before_mib:.1f} MiB "
            f"({b.bytes_per_decision:.0f} B per decision)",
            f"time                 {b.seconds:.2f} s ({b.decisions / b.seconds:,.0f} decisions/s)",
        ]
    )
