"""One evaluation: a labelled set, a pack and a model in; a :class:`Report` out."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from modfleet.evaluate.data import LabelledSet
from modfleet.evaluate.metrics import DEFAULT_FLAG_ACTIONS, evaluate_labels
from modfleet.evaluate.report import Report
from modfleet.evaluate.scoring import score_texts
from modfleet.inference import Classifier
from modfleet.policy.model import Action, Policy


def evaluate(
    data: LabelledSet,
    policy: Policy,
    policy_path: Path,
    classifier: Classifier,
    *,
    batch_size: int,
    flag_actions: Collection[Action] = DEFAULT_FLAG_ACTIONS,
    title: str | None = None,
    source: str | None = None,
    on_batch: Callable[[int], None] = lambda n: None,
) -> Report:
    """Score every usable row of ``data`` under ``policy`` and measure the result."""
    model_id = classifier.model_id  # read before scoring closes the classifier
    texts = [row.text for row in data.rows]
    scored = score_texts(classifier, policy, texts, batch_size=batch_size, on_batch=on_batch)
    flag = frozenset(flag_actions)
    return Report(
        title=title or f"Evaluation of {data.path.name}",
        source=source,
        data=data,
        policy=policy,
        policy_path=policy_path,
        model_id=model_id,
        flag_actions=flag,
        batch_size=batch_size,
        scored=scored,
        metrics=evaluate_labels(data.rows, scored, policy, flag),
    )
