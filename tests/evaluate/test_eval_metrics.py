from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eval_fakes import ScoreInText
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from modfleet.evaluate.data import FieldMap, LabelledSet, Row, read_labelled
from modfleet.evaluate.metrics import (
    DEFAULT_FLAG_ACTIONS,
    LabelMetrics,
    evaluate_labels,
    label_metrics,
)
from modfleet.evaluate.run import evaluate
from modfleet.evaluate.scoring import score_texts
from modfleet.policy import Action, Policy


def _by_label(metrics: list[LabelMetrics]) -> dict[str, LabelMetrics]:
    return {m.label: m for m in metrics}


def _evaluate(
    data: LabelledSet,
    pack: Policy,
    model: ScoreInText,
    flag: frozenset[Action] = DEFAULT_FLAG_ACTIONS,
) -> dict[str, LabelMetrics]:
    report = evaluate(data, pack, Path("pack.yaml"), model, batch_size=3, flag_actions=flag)
    return _by_label(report.metrics)


def test_hand_checked_case(pack: Policy, hand_csv: Path, fake_model: ScoreInText) -> None:
    # Scores 0.95 .85 .70 .60 .40 .30 .20 .10; harassment truth T T F T T F F F; label at >= 0.5.
    data = read_labelled(hand_csv, pack, FieldMap())
    harassment = _evaluate(data, pack, fake_model)["harassment"]
    c = harassment.confusion
    assert c is not None
    assert (c.tp, c.fp, c.fn, c.tn) == (3, 1, 1, 3)
    assert harassment.precision == pytest.approx(0.75)
    assert harassment.recall == pytest.approx(0.75)
    assert harassment.f1 == pytest.approx(0.75)
    # 14 of the 16 (positive, negative) pairs are ordered right: 0.60 and 0.40 lose to 0.70.
    assert harassment.roc_auc == pytest.approx(14 / 16)
    # Flagging at >= 0.40 catches all four at precision 4/5: F1 8/9, the best on offer.
    assert harassment.best is not None
    assert harassment.best.threshold == pytest.approx(0.40)
    assert (harassment.best.precision, harassment.best.recall) == pytest.approx((0.8, 1.0))
    assert harassment.best.f1 == pytest.approx(8 / 9)


def test_flag_actions_decide_what_counts_as_flagged(
    pack: Policy, hand_csv: Path, fake_model: ScoreInText
) -> None:
    data = read_labelled(hand_csv, pack, FieldMap())
    only_remove = _evaluate(data, pack, fake_model, frozenset({"remove"}))["harassment"]
    # remove is at >= 0.8: the two top posts, both harassment.
    assert (only_remove.precision, only_remove.recall) == pytest.approx((1.0, 0.5))
    assert only_remove.roc_auc == pytest.approx(14 / 16)  # scores do not depend on actions


def test_a_category_the_model_does_not_score_is_unscored_not_zero(
    pack: Policy, hand_csv: Path, fake_model: ScoreInText
) -> None:
    spam = _evaluate(read_labelled(hand_csv, pack, FieldMap()), pack, fake_model)["spam"]
    assert not spam.scored
    assert (spam.positives, spam.negatives) == (2, 6)
    assert (spam.precision, spam.recall, spam.f1, spam.roc_auc) == (None, None, None, None)
    assert spam.confusion is None
    assert "unscored" in spam.note
    assert "model_labels: []" in spam.note


def test_metrics_agree_with_sklearn_on_the_same_scores(
    pack: Policy, fake_model: ScoreInText
) -> None:
    rng = np.random.default_rng(8)
    scores = rng.random(300).round(6)
    truth = rng.random(300) < scores  # higher score, likelier harassment: a plausible model
    rows = [
        Row(i + 2, f"row {i} score={s:.6f}", {"flagged": bool(t), "harassment": bool(t)})
        for i, (s, t) in enumerate(zip(scores, truth, strict=True))
    ]
    scored = score_texts(fake_model, pack, [r.text for r in rows], batch_size=64)
    got = _by_label(evaluate_labels(rows, scored, pack))
    predicted = scores >= 0.5  # both harassment rows (label, remove) start at 0.5
    for label in ("flagged", "harassment"):
        m = got[label]
        assert m.precision == pytest.approx(precision_score(truth, predicted))
        assert m.recall == pytest.approx(recall_score(truth, predicted))
        assert m.f1 == pytest.approx(f1_score(truth, predicted))
        assert m.roc_auc == pytest.approx(roc_auc_score(truth, scores))
        assert m.average_precision == pytest.approx(average_precision_score(truth, scores))
        assert m.confusion is not None
        tn, fp, fn, tp = confusion_matrix(truth, predicted).ravel()
        assert (m.confusion.tp, m.confusion.fp, m.confusion.fn, m.confusion.tn) == (tp, fp, fn, tn)
        assert m.best is not None
        brute = max(f1_score(truth, scores >= t) for t in np.unique(scores))
        assert m.best.f1 == pytest.approx(brute)
        assert f1_score(truth, scores >= m.best.threshold) == pytest.approx(brute)


def test_one_class_labels_give_no_roc_auc() -> None:
    m = label_metrics("harassment", [False, False, False], [True, False, False], [0.9, 0.2, 0.1])
    assert m.scored
    assert m.roc_auc is None
    assert m.best is None
    assert m.precision == 0.0
    assert "one class" in m.note
