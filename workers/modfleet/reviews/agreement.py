"""Agreement of reviewers with the fleet's decisions, per category, pack digest, model and stage.

For each group: how many decisions reviewers judged, how many they overturned, and the precision
of escalations and of removals (the share a reviewer upheld). Per category, the model's flag
against the reviewer's verdict (a confusion count), from which precision and recall follow.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from modfleet.reviews.join import RESULTS, Joined, Outcome, Result

DIMENSIONS = ("category", "policy_digest", "model", "stage")


@dataclass
class Group:
    reviewed: int = 0
    overturned: int = 0
    escalations: int = 0
    escalations_upheld: int = 0
    removals: int = 0
    removals_upheld: int = 0

    def add(self, joined: Joined) -> None:
        self.reviewed += 1
        upheld = joined.upheld
        self.overturned += not upheld
        if joined.decision.action == "escalate":
            self.escalations += 1
            self.escalations_upheld += upheld
        elif joined.decision.action == "remove":
            self.removals += 1
            self.removals_upheld += upheld

    @property
    def overturned_share(self) -> float | None:
        return _share(self.overturned, self.reviewed)

    @property
    def escalation_precision(self) -> float | None:
        return _share(self.escalations_upheld, self.escalations)

    @property
    def removal_precision(self) -> float | None:
        return _share(self.removals_upheld, self.removals)


@dataclass
class Confusion:
    """The model's flag on one category against the reviewer's verdict."""

    tp: int = 0  # flagged, violates
    fp: int = 0  # flagged, fine
    fn: int = 0  # not flagged, violates
    tn: int = 0  # not flagged, fine

    def add(self, flagged: bool, violates: bool) -> None:
        if flagged:
            self.tp += violates
            self.fp += not violates
        else:
            self.fn += violates
            self.tn += not violates

    @property
    def judged(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float | None:
        return _share(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _share(self.tp, self.tp + self.fn)

    @property
    def agreement(self) -> float | None:
        return _share(self.tp + self.tn, self.judged)


@dataclass
class Tally:
    """Every outcome of a join, counted; the numbers `modfleet reviews report` prints."""

    results: collections.Counter[Result] = field(default_factory=collections.Counter)
    overall: Group = field(default_factory=Group)
    groups: dict[str, dict[str, Group]] = field(
        default_factory=lambda: {name: {} for name in DIMENSIONS}
    )
    categories: dict[str, Confusion] = field(default_factory=dict)

    def add(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.results[outcome.result] += 1
            if outcome.joined is not None:
                self._joined(outcome.joined)

    def _joined(self, joined: Joined) -> None:
        d = joined.decision
        self.overall.add(joined)
        for name, value in (("policy_digest", d.digest), ("model", d.model), ("stage", d.stage)):
            self.groups[name].setdefault(value, Group()).add(joined)
        for category in sorted(d.labels):
            self.groups["category"].setdefault(category, Group()).add(joined)
        for category, flagged, violates in joined.verdicts():
            self.categories.setdefault(category, Confusion()).add(flagged, violates)

    def as_json(self) -> dict[str, object]:
        return {
            "results": {name: self.results[name] for name in RESULTS},
            "overall": _group_json(self.overall),
            **{
                f"by_{name}": {k: _group_json(g) for k, g in sorted(groups.items())}
                for name, groups in self.groups.items()
            },
            "verdicts_by_category": {
                name: {
                    "tp": c.tp,
                    "fp": c.fp,
                    "fn": c.fn,
                    "tn": c.tn,
                    "precision": c.precision,
                    "recall": c.recall,
                    "agreement": c.agreement,
                }
                for name, c in sorted(self.categories.items())
            },
        }


def render(tally: Tally) -> str:
    results = ", ".join(f"{name} {tally.results[name]}" for name in RESULTS if name != "pending")
    lines = [f"reviews: {results}", _group_line("all decisions", tally.overall)]
    for name, groups in tally.groups.items():
        if groups:
            lines.append(f"by {name} (decisions that flagged it)" if name == "category" else
                         f"by {name}")  # fmt: skip
            lines += [_group_line(f"  {key}", g) for key, g in sorted(groups.items())]
    if tally.categories:
        lines.append("verdicts by category: flagged/violates tp fp fn tn, precision, recall")
        lines += [
            f"  {name:<24} {c.tp:>6} {c.fp:>6} {c.fn:>6} {c.tn:>6}  "
            f"{_pct(c.precision):>7} {_pct(c.recall):>7}"
            for name, c in sorted(tally.categories.items())
        ]
    return "\n".join(lines)


def _group_line(label: str, g: Group) -> str:
    return (
        f"{label:<28} reviewed {g.reviewed:>6}  overturned {_pct(g.overturned_share):>7}  "
        f"escalation precision {_pct(g.escalation_precision):>7} ({g.escalations})  "
        f"removal precision {_pct(g.removal_precision):>7} ({g.removals})"
    )


def _group_json(g: Group) -> dict[str, object]:
    return {
        "reviewed": g.reviewed,
        "overturned": g.overturned,
        "overturned_share": g.overturned_share,
        "escalations": g.escalations,
        "escalation_precision": g.escalation_precision,
        "removals": g.removals,
        "removal_precision": g.removal_precision,
    }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
