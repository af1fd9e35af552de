"""`modfleet eval` and `modfleet policy test` on input that once crashed them or passed silently.

Each failure is a one-line message naming the file and line (or the field), never a traceback;
a minimum that cannot be checked fails the check rather than passing it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from modfleet.cli import main

pytestmark = pytest.mark.usefixtures("fake_plugin")

_GATE = """
gate:
  golden_set: golden.jsonl
  tolerance: 0.02
  baseline_f1:
    harassment: 0.5
    spam: 0.5
"""


def _jsonl(tmp_path: Path, rows: list[dict[str, Any]], name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _eval(data: Path, pack_path: Path, out: Path, *args: str) -> Result:
    argv = ["eval", str(data), "--policy", str(pack_path), "--out", str(out), *args]
    return CliRunner().invoke(main, argv)


def _no_traceback(result: Result) -> None:
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    assert "Traceback" not in result.output


def _gated_pack(tmp_path: Path, pack_path: Path) -> Path:
    path = tmp_path / "pack.yaml"
    shutil.copy(pack_path, path)
    with path.open("a", encoding="utf-8") as pack:
        pack.write(_GATE)
    return path


def test_the_gate_fails_a_golden_set_whose_label_column_is_empty_on_every_row(
    tmp_path: Path, pack_path: Path
) -> None:
    # The spam column is there (so the label is "found") but never holds a value.
    _jsonl(tmp_path, [
        {"text": "a score=0.9", "harassment": True, "spam": None},
        {"text": "b score=0.1", "harassment": False, "spam": None},
    ], name="golden.jsonl")  # fmt: skip
    result = CliRunner().invoke(main, ["policy", "test", str(_gated_pack(tmp_path, pack_path))])
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "has no labels for spam" in result.stdout
    assert "FAILED: 0 of 1 packs passed" in result.stdout


def test_the_gate_reports_a_golden_set_that_is_not_utf8(tmp_path: Path, pack_path: Path) -> None:
    golden = tmp_path / "golden.jsonl"
    golden.write_bytes(
        b'{"text": "ok score=0.9", "harassment": true, "spam": false}\n'
        b'{"text": "caf\xe9 score=0.1", "harassment": false, "spam": true}\n'
    )
    result = CliRunner().invoke(main, ["policy", "test", str(_gated_pack(tmp_path, pack_path))])
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert f"{golden}:2: not UTF-8" in result.stdout


def test_fail_under_fails_a_metric_that_could_not_be_measured(
    tmp_path: Path, pack_path: Path
) -> None:
    # Every row is harassment: ROC-AUC is undefined on one class, so 0.99 is not shown to hold.
    rows = [{"text": f"{c} score=0.9", "harassment": True} for c in "abc"]
    result = _eval(_jsonl(tmp_path, rows), pack_path, tmp_path / "o",
                   "--fail-under", "harassment.roc_auc=0.99")  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "harassment.roc_auc: not measured" in result.stderr
    every = _eval(_jsonl(tmp_path, rows), pack_path, tmp_path / "p",
                  "--fail-under", "roc_auc=0.5")  # fmt: skip
    assert every.exit_code == 3, every.output
    assert "harassment.roc_auc: not measured" in every.stderr


@pytest.mark.parametrize("minimum", ["nan", "inf", "-inf", "1.5", "-0.1"])
def test_a_fail_under_minimum_outside_zero_to_one_is_refused(
    tmp_path: Path, pack_path: Path, minimum: str
) -> None:
    rows = [
        {"text": "a score=0.9", "harassment": True},
        {"text": "b score=0.1", "harassment": False},
    ]
    result = _eval(_jsonl(tmp_path, rows), pack_path, tmp_path / "o", "--fail-under",
                   f"f1={minimum}")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"'f1={minimum}'" in result.output
    assert "between 0 and 1" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["set.csv", "set.jsonl"])
def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path, pack_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_bytes(b"text,harassment\nfine score=0.9,yes\nna\xefve score=0.1,no\n")
        line = 3
    else:
        path.write_bytes(b'{"text": "fine score=0.9", "harassment": true}\n'
                         b'{"text": "na\xefve score=0.1", "harassment": false}\n')  # fmt: skip
        line = 2
    result = _eval(path, pack_path, tmp_path / "o")
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert f"{path}:{line}: not UTF-8" in result.output
    assert "save it as UTF-8" in result.output


def test_a_lone_surrogate_in_valid_json_is_written_escaped(tmp_path: Path, pack_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text('{"text": "a score=0.9 \\ud800", "harassment": true, "group": "\\udfff"}\n'
                    '{"text": "b score=0.1", "harassment": false, "group": "x"}\n',
                    encoding="utf-8")  # fmt: skip
    out = tmp_path / "o"
    result = _eval(path, pack_path, out, "--group-field", "group")
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text("utf-8").splitlines()]
    assert rows[0]["text"] == "a score=0.9 \ud800"
    assert json.loads((out / "report.json").read_text("utf-8"))["data"]["evaluated"] == 2
    assert "### group = \\udfff" in (out / "report.md").read_text("utf-8")


def test_a_csv_post_over_128_kib_is_evaluated(tmp_path: Path, pack_path: Path) -> None:
    # csv's default field limit is 131,072 characters; replay takes such a post, so eval must.
    path = tmp_path / "set.csv"
    long = ("score=0.9 " + "a" * 990) * 200  # a score in every window the model reads
    path.write_text(f"text,harassment\n{long},yes\nb score=0.1,no\n", encoding="utf-8")
    out = tmp_path / "o"
    result = _eval(path, pack_path, out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text("utf-8"))["data"]["evaluated"] == 2
