"""Fit one logistic head per category on hashed features; measure each on the held-out split.

Deterministic: the features are stateless hashes, the examples are in a fixed order, and
liblinear's coordinate order is drawn from ``seed``; the same data and seed give the same
weights, so the card's metrics are reproduced to the last digit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
)

from modfleet.errors import FatalError
from modfleet.model.data import TEST, TRAIN, Example
from modfleet.model.features import Featuriser

CATEGORIES = ("harassment", "hate", "violence", "sexual", "self_harm", "spam")
MIN_POSITIVES = 5  # fewer cannot fit a head; the trainer refuses rather than ship a blind one


@dataclass(frozen=True)
class Fitted:
    weights: np.ndarray[Any, np.dtype[np.float32]]  # n_features x categories
    intercepts: np.ndarray[Any, np.dtype[np.float32]]
    metrics: dict[str, dict[str, Any]]  # category -> held-out metrics


def fit(
    examples: Sequence[Example],
    featuriser: Featuriser,
    *,
    categories: Sequence[str] = CATEGORIES,
    seed: int = 0,
    c: float = 4.0,
    progress: Callable[[str], None] = lambda line: None,
) -> Fitted:
    """Train a head per category on the ``train`` rows labelled for it; test on ``test`` rows."""
    progress(f"featurising {len(examples)} texts")
    x = featuriser.transform([e.text for e in examples])
    weights = np.zeros((featuriser.n_features, len(categories)), dtype=np.float32)
    intercepts = np.zeros(len(categories), dtype=np.float32)
    metrics: dict[str, dict[str, Any]] = {}
    for j, category in enumerate(categories):
        train = _labelled(examples, category, TRAIN)
        y = np.asarray([examples[i].labels[category] for i in train], dtype=bool)
        if y.sum() < MIN_POSITIVES or (~y).sum() < MIN_POSITIVES:
            raise FatalError(
                f"category {category!r}: {int(y.sum())} positive and {int((~y).sum())} negative "
                f"training rows; at least {MIN_POSITIVES} of each are needed"
            )
        progress(f"fitting {category}: {int(y.sum())} positives, {int((~y).sum())} negatives")
        head = LogisticRegression(
            C=c, solver="liblinear", class_weight="balanced", random_state=seed, max_iter=200
        )
        head.fit(x[train], y)
        weights[:, j] = head.coef_[0]
        intercepts[j] = head.intercept_[0]
        # Measured with the weights as they are shipped (float16), not as fitted.
        shipped = weights[:, j].astype(np.float16).astype(np.float32)
        test = _labelled(examples, category, TEST)
        logits = x[test] @ shipped + intercepts[j]
        truth = np.asarray([examples[i].labels[category] for i in test], dtype=bool)
        metrics[category] = {
            "train": {"positives": int(y.sum()), "negatives": int((~y).sum())},
            "test": binary_metrics(truth, 1.0 / (1.0 + np.exp(-logits))),
            "sources": _sources(examples, train, y),
        }
    return Fitted(weights, intercepts, metrics)


def _labelled(examples: Sequence[Example], category: str, split: str) -> list[int]:
    return [i for i, e in enumerate(examples) if e.split == split and category in e.labels]


def _sources(
    examples: Sequence[Example], rows: list[int], y: np.ndarray[Any, Any]
) -> dict[str, Any]:
    # How much of each head rests on each source: positives and negatives per source.
    out: dict[str, dict[str, int]] = {}
    for i, positive in zip(rows, y, strict=True):
        counts = out.setdefault(examples[i].source, {"positives": 0, "negatives": 0})
        counts["positives" if positive else "negatives"] += 1
    return out


def binary_metrics(truth: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> dict[str, Any]:
    """ROC-AUC, average precision, F1 at 0.5 and the best-F1 threshold, rounded for the card."""
    positives = int(truth.sum())
    out: dict[str, Any] = {"positives": positives, "negatives": int(len(truth) - positives)}
    if positives in (0, len(truth)):
        return out | {"note": "one class only: no ROC-AUC"}
    predicted = scores >= 0.5
    tp = int((predicted & truth).sum())
    f1 = 2 * tp / (int(predicted.sum()) + positives) if tp else 0.0
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    p, r = precision[:-1], recall[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1s = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    best = int(np.argmax(f1s))
    return out | {
        "roc_auc": round(float(roc_auc_score(truth, scores)), 4),
        "average_precision": round(float(average_precision_score(truth, scores)), 4),
        "f1_at_0.5": round(f1, 4),
        "precision_at_0.5": round(tp / max(int(predicted.sum()), 1), 4),
        "recall_at_0.5": round(tp / positives, 4),
        "best_f1": round(float(f1s[best]), 4),
        "best_f1_threshold": round(float(thresholds[best]), 4),
    }
