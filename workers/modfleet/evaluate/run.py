"""One evaluation: a labelled set, a pack and a model in; a :class:`Report` out."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from modfleet.evaluate.data import LabelledSet
from modfleet.evaluate.metrics import DEFAULT_FLAG_ACTIONS, LabelMetrics, evaluate_labels
from modfleet.evaluate.report import Report
from modfleet.evaluate.scoring import Scored, score_texts
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
        groups=_by_group(data, scored, policy, flag),
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


def _by_group(
    data: LabelledSet, scored: Scored, policy: Policy, flag: frozenset[Action]
) -> dict[str, list[LabelMetrics]]:
    """Metrics per value of the group field (functionality, target group), when there is one."""
    if data.fields.group is None:
        return {}
    members: dict[str, list[int]] = {}
    for i, row in enumerate(data.rows):
        members.setdefault(row.group or "(empty)", []).append(i)
    return {
        value: evaluate_labels([data.rows[i] for i in rows], scored.subset(rows), policy, flag)
        for value, rows in sorted(members.items())
    }
