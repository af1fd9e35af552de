"""`modfleet eval` on data shaped like outside sets: each fix of issue 14, item 5, has a case.

The fake model reads each row's score from its text ("score=0.83"); the pack flags harassment
at 0.5 and does not score spam.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from modfleet.cli import main
from modfleet.evaluate.data import FieldMap, read_labelled
from modfleet.evaluate.metrics import label_metrics, parse_fail_under
from modfleet.policy import Policy

pytestmark = pytest.mark.usefixtures("fake_plugin")


def _jsonl(tmp_path: Path, rows: list[dict[str, Any]], name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _eval(data: Path, pack_path: Path, out: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["eval", str(data), "--policy", str(pack_path), "--out", str(out), *args]
    )


def _report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return data


def test_a_missing_label_drops_the_row_for_that_category_only(tmp_path: Path, pack: Policy) -> None:
    path = _jsonl(tmp_path, [
        {"text": "a score=0.9", "harassment": True, "spam": False},
        {"text": "b score=0.1", "harassment": False},  # no spam label
        {"text": "c score=0.2", "harassment": None, "spam": True},  # no harassment label
    ])  # fmt: skip
    data = read_labelled(path, pack, FieldMap())
    assert data.bad == []
    assert [r.labels for r in data.rows] == [
        {"harassment": True, "spam": False},
        {"harassment": False},
        {"spam": True},
    ]


def test_jsonl_fields_are_found_in_any_row_not_just_the_first(tmp_path: Path, pack: Policy) -> None:
    path = _jsonl(tmp_path, [
        {"text": "a score=0.9", "harassment": True},
        {"text": "b score=0.1", "harassment": False, "spam": True},
    ])  # fmt: skip
    data = read_labelled(path, pack, FieldMap())
    assert set(data.fields.label_fields()) == {"harassment", "spam"}


def test_safe_and_unsafe_are_labels(tmp_path: Path, pack: Policy) -> None:
    path = _jsonl(tmp_path, [
        {"text": "a score=0.9", "harassment": "unsafe"},
        {"text": "b score=0.1", "harassment": "Safe"},
    ])  # fmt: skip
    data = read_labelled(path, pack, FieldMap())
    assert [r.labels["harassment"] for r in data.rows] == [True, False]


def test_a_benign_only_set_reports_its_false_flag_rate(tmp_path: Path, pack_path: Path) -> None:
    rows = [{"text": f"post score={s}", "harassment": False} for s in (0.1, 0.2, 0.6, 0.9)]
    result = _eval(_jsonl(tmp_path, rows), pack_path, tmp_path / "o")
    assert result.exit_code == 0, result.output
    harassment = _report(tmp_path / "o")["metrics"]["harassment"]
    assert harassment["false_flag_rate"] == 0.5  # 0.6 and 0.9 are flagged
    assert "| harassment | 0 | 4 |" in result.stdout
    assert "0.500" in result.stdout


def test_several_fields_feed_one_category_any_positive(tmp_path: Path, pack_path: Path) -> None:
    rows = [
        {"text": "a score=0.9", "insult": "yes", "threat": "no"},
        {"text": "b score=0.8", "insult": "no", "threat": "yes"},
        {"text": "c score=0.1", "insult": "no", "threat": ""},
    ]
    out = tmp_path / "o"
    result = _eval(
        _jsonl(tmp_path, rows), pack_path, out,
        "--category-field", "harassment=insult", "--category-field", "harassment=threat",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    harassment = _report(out)["metrics"]["harassment"]
    assert (harassment["positives"], harassment["negatives"]) == (2, 1)


def test_the_report_has_every_rows_scores_action_and_labels(
    tmp_path: Path, pack_path: Path
) -> None:
    rows = [
        {"text": "a score=0.9", "harassment": True},
        {"text": "b score=0.2", "harassment": True},
    ]
    out = tmp_path / "o"
    assert _eval(_jsonl(tmp_path, rows), pack_path, out).exit_code == 0
    written = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [(r["line"], r["action"], r["labels"]) for r in written] == [
        (1, "remove", {"harassment": True}),
        (2, "allow", {"harassment": True}),
    ]
    assert written[0]["scores"] == {"harassment": 0.9}


def test_group_field_reports_metrics_per_value(tmp_path: Path, pack_path: Path) -> None:
    rows = [
        {"text": "a score=0.9", "harassment": True, "target": "women"},
        {"text": "b score=0.7", "harassment": False, "target": "women"},
        {"text": "c score=0.1", "harassment": True, "target": "muslims"},
        {"text": "d score=0.2", "harassment": False, "target": "muslims"},
    ]
    out = tmp_path / "o"
    result = _eval(_jsonl(tmp_path, rows), pack_path, out, "--group-field", "target")
    assert result.exit_code == 0, result.output
    groups = _report(out)["groups"]
    assert groups["women"]["harassment"]["recall"] == 1.0
    assert groups["women"]["harassment"]["false_flag_rate"] == 1.0
    assert groups["muslims"]["harassment"]["recall"] == 0.0
    assert "### target = muslims" in (out / "report.md").read_text(encoding="utf-8")


def test_fail_under_gives_an_exit_code_for_ci(tmp_path: Path, pack_path: Path) -> None:
    rows = [
        {"text": "a score=0.9", "harassment": True},
        {"text": "b score=0.2", "harassment": True},
        {"text": "c score=0.1", "harassment": False},
    ]
    data = _jsonl(tmp_path, rows)
    failed = _eval(data, pack_path, tmp_path / "o", "--fail-under", "harassment.recall=0.9")
    assert failed.exit_code == 3
    assert "harassment.recall = 0.500 < 0.9" in failed.output
    passed = _eval(data, pack_path, tmp_path / "p", "--fail-under", "precision=0.9")
    assert passed.exit_code == 0, passed.output
    wrong = _eval(data, pack_path, tmp_path / "q", "--fail-under", "speed=3")
    assert wrong.exit_code == 2
    assert "metric must be one of" in wrong.output
    assert parse_fail_under("roc_auc=0.8") == (None, "roc_auc", 0.8)


def test_no_best_threshold_when_the_best_is_to_flag_everything() -> None:
    # Positives score lowest: the highest F1 comes from flagging every row, which is no advice.
    metrics = label_metrics(
        "harassment", [True, True, False], [False, False, False], [0.1, 0.2, 0.9]
    )
    assert metrics.best is None
    assert "flagging all" in metrics.note
    useful = label_metrics(
        "harassment", [True, False, False], [True, False, False], [0.9, 0.1, 0.2]
    )
    assert useful.best is not None
    assert useful.best.threshold == 0.9
