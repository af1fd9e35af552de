"""The regression gate: does a pack still reach the F1 recorded in its ``gate:`` block?

Each pack names a golden set (a small labelled file beside it), the F1 it reached there when it
was last accepted, and how much of that a change may lose. A pack whose F1 falls further fails,
so a policy repository's CI refuses a threshold change that quietly makes moderation worse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modfleet.errors import ModfleetError
from modfleet.evaluate.data import FieldMap, read_labelled
from modfleet.evaluate.metrics import LabelMetrics
from modfleet.evaluate.run import evaluate
from modfleet.inference import Classifier
from modfleet.policy.load import PolicyInvalid, load_policy
from modfleet.policy.model import Gate, Policy

# Float noise must not turn "exactly at the limit" into a failure.
_EPSILON = 1e-9


@dataclass(frozen=True)
class GateLine:
    label: str
    baseline: float
    measured: float | None  # None: the model no longer scores the label
    tolerance: float

    @property
    def passed(self) -> bool:
        floor = self.baseline - self.tolerance - _EPSILON
        return self.measured is not None and self.measured >= floor


@dataclass(frozen=True)
class GateResult:
    path: Path
    lines: list[GateLine] = field(default_factory=list)
    error: str | None = None  # the pack could not be tested at all
    skipped: bool = False  # the pack has no gate: block
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and all(line.passed for line in self.lines)


def run_gate(path: Path, make_classifier: Callable[[], Classifier], batch_size: int) -> GateResult:
    """Test the pack at ``path``; a pack that cannot be tested is a failed result, not a raise."""
    try:
        policy = load_policy(path)
    except PolicyInvalid as exc:
        return GateResult(path, error="\n".join(str(p) for p in exc.problems))
    if policy.gate is None:
        return GateResult(path, skipped=True)
    try:
        return _measure(path, policy, policy.gate, make_classifier(), batch_size)
    except ModfleetError as exc:
        return GateResult(path, error=str(exc))


def _measure(
    path: Path, policy: Policy, gate: Gate, classifier: Classifier, batch_size: int
) -> GateResult:
    golden = path.parent / gate.golden_set
    data = read_labelled(golden, policy, FieldMap())
    if data.bad:
        # A golden set is small and hand-kept: an unusable row is a mistake to fix, not to skip.
        listing = "; ".join(str(bad) for bad in data.bad)
        return GateResult(path, error=f"golden set {golden} has unusable rows: {listing}")
    report = evaluate(data, policy, path, classifier, batch_size=batch_size)
    measured = {m.label: m for m in report.metrics}
    # Measured, not merely named: a label column that is empty on every row yields no metrics.
    missing = sorted(set(gate.baseline_f1) - set(measured))
    if missing:
        return GateResult(path, error=f"golden set {golden} has no labels for {', '.join(missing)}")
    lines = [
        GateLine(label, baseline, _f1(measured[label]), gate.tolerance)
        for label, baseline in gate.baseline_f1.items()
    ]
    notes = [f"model {report.model_id}, golden set {golden} ({len(data.rows)} rows)"]
    if gate.model and gate.model != report.model_id:
        notes.append(f"the baseline was measured with {gate.model}: compare with care")
    return GateResult(path, lines, notes=notes)


def _f1(metrics: LabelMetrics) -> float | None:
    return metrics.f1 if metrics.scored else None


def failures(results: Sequence[GateResult], *, require_gate: bool) -> list[GateResult]:
    return [r for r in results if not r.passed or (r.skipped and require_gate)]


def format_results(results: Sequence[GateResult], *, require_gate: bool) -> list[str]:
    """The results as a fixed-width table, then a one-line verdict."""
    width = max([len(str(r.path)) for r in results] + [4])
    out = [f"{'pack':<{width}}  {'label':<12} {'baseline':>8} {'F1':>7} {'change':>7}  result"]
    for result in results:
        out += _result_lines(result, width, require_gate)
    failed = failures(results, require_gate=require_gate)
    verdict = f"{len(results) - len(failed)} of {len(results)} packs passed"
    out.append(f"\n{'FAILED' if failed else 'ok'}: {verdict}")
    if any(line for r in failed for line in r.lines if not line.passed):
        out.append(
            "If the change is deliberate, measure it with `modfleet eval GOLDEN_SET --policy "
            "PACK` and record the new figures under gate.baseline_f1 in the pack."
        )
    return out


def _result_lines(result: GateResult, width: int, require_gate: bool) -> list[str]:
    name = f"{result.path!s:<{width}}"
    if result.error is not None:
        return [f"{name}  ERROR: {result.error}"]
    if result.skipped:
        verdict = "FAIL: no gate: block" if require_gate else "skipped: no gate: block"
        return [f"{name}  {verdict}"]
    lines = []
    for i, line in enumerate(result.lines):
        pack = name if i == 0 else " " * width
        lines.append(f"{pack}  {line.label:<12} {line.baseline:>8.3f} {_cells(line)}")
    return lines + [f"{' ' * width}  ({note})" for note in result.notes]


def _cells(line: GateLine) -> str:
    if line.measured is None:
        return f"{'-':>7} {'-':>7}  FAIL: the model no longer scores it"
    change = line.measured - line.baseline
    verdict = "ok" if line.passed else f"FAIL: more than {line.tolerance:.3f} below the baseline"
    return f"{line.measured:>7.3f} {change:>+7.3f}  {verdict}"
