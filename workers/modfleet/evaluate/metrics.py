"""How well a pack's decisions match the labels: one :class:`LabelMetrics` per label.

Precision, recall and F1 are those of the pack's actual decisions (flagged = an action in
``flag_actions``). ROC-AUC, average precision and the best-F1 threshold need scores, so they are
only given where the model scored the category; a category it does not score is reported as
unscored, never as a row of zeros that would read as "the model misses everything". Each label
is measured on the rows that have it; the false-flag rate (flagged negatives / negatives) is
given even for a set of benign posts only, where nothing else is defined.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from modfleet.evaluate.data import Row
from modfleet.evaluate.scoring import Scored
from modfleet.policy.model import FLAGGED, Action, Policy

DEFAULT_FLAG_ACTIONS: frozenset[Action] = frozenset({"label", "restrict", "escalate", "remove"})


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    fn: int
    tn: int


@dataclass(frozen=True)
class Best:
    """The score threshold (flag at >= threshold) with the highest F1, and what it gives."""

    threshold: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class LabelMetrics:
    label: str
    positives: int
    negatives: int
    scored: bool
    note: str = ""
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    confusion: Confusion | None = None
    false_flag_rate: float | None = None  # of the negatives, the share the pack flagged
    roc_auc: float | None = None
    average_precision: float | None = None
    best: Best | None = None
    # The precision-recall curve, for the plot; left out of the JSON.
    curve: tuple[list[float], list[float]] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["curve"]
        return data


def evaluate_labels(
    rows: Sequence[Row],
    scored: Scored,
    policy: Policy,
    flag_actions: Collection[Action] = DEFAULT_FLAG_ACTIONS,
) -> list[LabelMetrics]:
    """Metrics for every label any row carries, ``flagged`` first."""
    seen = dict.fromkeys(label for row in rows for label in row.labels)
    labels = sorted(seen, key=lambda label: label != FLAGGED)  # stable: the rest as first seen
    return [_for_label(label, rows, scored, policy, frozenset(flag_actions)) for label in labels]


def _for_label(
    label: str, rows: Sequence[Row], scored: Scored, policy: Policy, flag: frozenset[Action]
) -> LabelMetrics:
    # Only the rows labelled for it: a row without this label still counts for the others.
    have = [i for i, row in enumerate(rows) if label in row.labels]
    truth = [rows[i].labels[label] for i in have]
    judgements = [scored.judgements[i] for i in have]
    if label == FLAGGED:
        scores = [max(s.values()) if s else None for s in (scored.scores[i] for i in have)]
        predicted = [j.action in flag for j in judgements]
    else:
        scores = [scored.scores[i].get(label) for i in have]
        predicted = [j.per_category.get(label, "allow") in flag for j in judgements]
    unscored = _unscored_note(label, scores, policy)
    if unscored:
        return LabelMetrics(label, sum(truth), len(truth) - sum(truth), scored=False, note=unscored)
    return label_metrics(label, truth, predicted, [s for s in scores if s is not None])


def _unscored_note(label: str, scores: Sequence[float | None], policy: Policy) -> str:
    have = sum(s is not None for s in scores)
    if have == len(scores):
        return ""
    if have:
        return f"unscored: the model scored {have} of {len(scores)} rows"
    if label == FLAGGED:
        return "unscored: the model scores none of the pack's categories"
    wanted = ", ".join(policy.categories[label].model_labels) or "[]"
    return f"unscored: the model gives no score for this category (model_labels: {wanted})"


def label_metrics(
    label: str, truth: Sequence[bool], predicted: Sequence[bool], scores: Sequence[float]
) -> LabelMetrics:
    """Metrics of one label from its truth, the pack's decisions and the scores behind them."""
    y, p, s = np.asarray(truth, bool), np.asarray(predicted, bool), np.asarray(scores, float)
    positives = int(y.sum())
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, p, average="binary", zero_division=0.0
    )
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, p, labels=[False, True]).ravel())
    common: dict[str, Any] = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "confusion": Confusion(tp=tp, fp=fp, fn=fn, tn=tn),
        "false_flag_rate": fp / (fp + tn) if fp + tn else None,
    }
    if positives in (0, len(y)):
        note = "only one class in the labels: ROC-AUC and the best threshold are undefined"
        return LabelMetrics(label, positives, len(y) - positives, True, note, **common)
    curve = _curve_and_best(y, s)
    note = "" if curve["best"] else "no best-F1 threshold: the best F1 comes from flagging all"
    return LabelMetrics(
        label,
        positives,
        len(y) - positives,
        scored=True,
        note=note,
        roc_auc=float(roc_auc_score(y, s)),
        average_precision=float(average_precision_score(y, s)),
        **common,
        **curve,
    )


def _curve_and_best(y: np.ndarray[Any, Any], s: np.ndarray[Any, Any]) -> dict[str, Any]:
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last point (precision 1, recall 0) has no threshold; leave it out of the search.
    p, r = precision[:-1], recall[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    i = int(np.argmax(f1))  # ties: the lowest threshold, which catches the most
    # At or below the lowest score, the threshold flags every row: that is no threshold to use.
    flags_all = float(thresholds[i]) <= float(s.min())
    best = None if flags_all else Best(float(thresholds[i]), float(p[i]), float(r[i]), float(f1[i]))
    return {"best": best, "curve": (precision.tolist(), recall.tolist())}


Spec = tuple[str | None, str, float]  # (label or None for every label, metric, minimum)
FAIL_METRICS = ("precision", "recall", "f1", "roc_auc", "average_precision")


def parse_fail_under(spec: str) -> Spec:
    """``METRIC=VALUE`` (every scored label) or ``LABEL.METRIC=VALUE``."""
    name, _, value = spec.partition("=")
    label, _, metric = name.strip().rpartition(".")
    if metric not in FAIL_METRICS:
        raise ValueError(f"{spec!r}: the metric must be one of {', '.join(FAIL_METRICS)}")
    try:
        minimum = float(value)
    except ValueError:
        raise ValueError(f"{spec!r}: {value!r} is not a number") from None
    # Every metric lies in [0, 1]; nan compares false with all, so it would never fail.
    if not 0.0 <= minimum <= 1.0:
        raise ValueError(f"{spec!r}: the minimum must be a number between 0 and 1")
    return (label or None, metric, minimum)


def below(metrics: Sequence[LabelMetrics], specs: Sequence[Spec]) -> list[str]:
    """Each (label, metric) under its minimum, or not measured, as a line; a named label that is
    missing too."""
    failed = []
    for label, metric, minimum in specs:
        chosen = [m for m in metrics if label in (None, m.label)]
        if label is not None and not any(m.scored for m in chosen):
            failed.append(f"{label}.{metric}: not measured (no such scored label)")
        for m in chosen:
            value = getattr(m, metric)
            if not m.scored:
                continue
            if value is None:  # a minimum nobody can check must not read as one that holds
                why = m.note or "undefined on these labels"
                failed.append(f"{m.label}.{metric}: not measured ({why})")
            elif value < minimum:
                failed.append(f"{m.label}.{metric} = {value:.3f} < {minimum:g}")
    return failed
