from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from modfleet.cli import main
from modfleet.evaluate import report


def _eval(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["eval", *map(str, args)])


@pytest.mark.usefixtures("fake_plugin")
def test_eval_writes_json_markdown_and_plot(
    tmp_path: Path, hand_csv: Path, pack_path: Path
) -> None:
    out = tmp_path / "out"
    result = _eval(hand_csv, "--policy", pack_path, "--out", out, "--source", "written for tests")
    assert result.exit_code == 0, result.output
    assert "| harassment | 4 | 4 | 0.750 | 0.750 | **0.750** | 0.250 | 0.875 |" in result.stdout
    assert "texts/s" in result.stdout

    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["model"] == "score-in-text"
    assert data["metrics"]["harassment"]["confusion"] == {"tp": 3, "fp": 1, "fn": 1, "tn": 3}
    assert data["metrics"]["spam"]["scored"] is False
    assert data["metrics"]["spam"]["f1"] is None
    assert data["throughput"]["texts"] == 8
    assert data["throughput"]["texts_per_s"] > 0

    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "**Source**: written for tests" in markdown
    assert "![precision-recall curves](pr.png)" in markdown
    assert "| spam | 2 | 6 | unscored" in markdown
    assert (out / "pr.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.usefixtures("fake_plugin")
def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path, pack_path: Path) -> None:
    data = tmp_path / "posts.csv"
    data.write_text("text,flagged\nscore=0.9 a,yes\n,no\nscore=0.1 b,no\n", encoding="utf-8")
    out = tmp_path / "out"
    result = _eval(data, "--policy", pack_path, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"{data}:3: field 'text' is empty" in result.stderr
    assert "1 unusable rows left out" in result.stderr
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert saved["data"]["bad_rows"] == [{"line": 3, "reason": "field 'text' is empty"}]
    assert saved["data"]["evaluated"] == 2
    assert "- line 3: field 'text' is empty" in (out / "report.md").read_text(encoding="utf-8")

    strict = _eval(data, "--policy", pack_path, "--out", tmp_path / "strict", "--strict")
    assert strict.exit_code == 1
    assert not (tmp_path / "strict").exists()


@pytest.mark.usefixtures("fake_plugin")
def test_field_mapping_flags(tmp_path: Path, pack_path: Path) -> None:
    data = tmp_path / "e.csv"
    data.write_text("comment;abuse;isSpam\nscore=0.9 x;Toxic;0\nscore=0.2 y;Clean;1\n", "utf-8")
    result = _eval(
        data, "--policy", pack_path, "--out", tmp_path / "o", "--sep", ";",
        "--text-field", "comment", "--category-field", "harassment=abuse",
        "--positive-value", "toxic",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    assert saved["data"]["fields"]["labels"] == {"harassment": ["abuse"]}
    assert saved["metrics"]["harassment"]["f1"] == 1.0


@pytest.mark.usefixtures("fake_plugin")
def test_bad_input_gives_a_clear_error(tmp_path: Path, hand_csv: Path, pack_path: Path) -> None:
    result = _eval(hand_csv, "--policy", pack_path, "--out", tmp_path, "--text-field", "body")
    assert result.exit_code == 1
    assert "hand.csv: no field 'body'; the fields are: text, harassment, spam" in result.stderr
    result = _eval(hand_csv, "--policy", pack_path, "--flag-actions", "label,ban")
    assert result.exit_code == 2
    assert "'ban' is not an action that flags" in result.stderr


@pytest.mark.usefixtures("fake_plugin")
def test_without_matplotlib_the_report_says_so(
    tmp_path: Path, hand_csv: Path, pack_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "plot_available", lambda: False)
    result = _eval(hand_csv, "--policy", pack_path, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "pr.png").exists()
    assert "matplotlib is not installed" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_eval_runs_the_embedded_model_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODFLEET_CLASSIFIER_PLUGIN", raising=False)
    monkeypatch.delenv("MODFLEET_POLICY_PATH", raising=False)
    data = tmp_path / "few.jsonl"
    rows = [("you are a fucking idiot", True), ("lovely weather for a walk today", False)]
    data.write_text("".join(json.dumps({"text": t, "flagged": f}) + "\n" for t, f in rows), "utf-8")
    result = _eval(data, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    assert saved["model"].startswith("modfleet-embedded-")
    assert saved["policy"]["id"] == "default"
    assert saved["metrics"]["flagged"]["f1"] == 1.0
