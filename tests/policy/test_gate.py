"""The regression gate (``modfleet policy test``) on the shipped pack and on changed copies of it.

These run the embedded model over the default pack's golden set (under a hundred posts).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from modfleet.cli import main
from modfleet.policy import check_policy
from modfleet.resources import default_policy_path

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(autouse=True)
def _embedded_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODFLEET_CLASSIFIER_PLUGIN", raising=False)
    monkeypatch.delenv("MODFLEET_POLICY_PATH", raising=False)


def _test(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["policy", "test", *map(str, args)])


def _copy(tmp_path: Path, edit: Edit) -> Path:
    """The default pack and its golden set in ``tmp_path``, the pack changed by ``edit``."""
    data = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    shutil.copy(default_policy_path().parent / data["gate"]["golden_set"], tmp_path)
    edit(data)
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _row(output: str, label: str) -> str:
    return next(line for line in output.splitlines() if f" {label} " in line)


def test_the_default_pack_passes_its_gate() -> None:
    result = _test(default_policy_path())
    assert result.exit_code == 0, result.output
    for label in ("flagged", "harassment", "hate", "sexual"):
        assert _row(result.stdout, label).endswith(" ok")
    assert "ok: 1 of 1 packs passed" in result.stdout


def test_the_configured_pack_is_tested_when_no_path_is_given() -> None:
    result = _test()
    assert result.exit_code == 0, result.output
    assert str(default_policy_path()) in result.stdout


def test_a_threshold_change_that_drops_f1_fails_the_gate(tmp_path: Path) -> None:
    def raise_harassment(data: dict[str, Any]) -> None:
        # Only near-certain harassment gets any action: recall, and with it F1, collapses.
        data["categories"]["harassment"]["thresholds"] = [{"min_score": 0.99, "action": "remove"}]

    result = _test(_copy(tmp_path, raise_harassment))
    assert result.exit_code == 1, result.output
    assert "FAIL: more than 0.020 below the baseline" in _row(result.stdout, "harassment")
    assert "FAILED: 0 of 1 packs passed" in result.stdout
    assert "record the new figures under gate.baseline_f1" in result.stdout


@pytest.mark.parametrize(("above", "passes"), [(0.019, True), (0.021, False)])
def test_tolerance_is_the_largest_drop_that_passes(
    tmp_path: Path, above: float, passes: bool
) -> None:
    def claim_more(data: dict[str, Any]) -> None:
        # The same pack, with a baseline just inside or just outside its tolerance of 0.02.
        measured = 80 / 96  # flagged: 40 of 52 caught, 4 false alarms -> F1 = 2*40/(2*40+4+12)
        data["gate"]["baseline_f1"] = {"flagged": round(measured + above, 4)}

    result = _test(_copy(tmp_path, claim_more))
    assert (result.exit_code == 0) is passes, result.output


def test_a_pack_that_cannot_be_tested_fails(tmp_path: Path) -> None:
    def lose_golden_set(data: dict[str, Any]) -> None:
        data["gate"]["golden_set"] = "missing.jsonl"

    result = _test(_copy(tmp_path, lose_golden_set))
    assert result.exit_code == 1
    assert "missing.jsonl: no such file" in result.stdout


def test_a_golden_set_with_bad_rows_fails_with_their_lines(tmp_path: Path) -> None:
    path = _copy(tmp_path, lambda data: None)
    golden = tmp_path / "default.golden.jsonl"
    golden.write_text(golden.read_text(encoding="utf-8") + '{"text": "", "flagged": false}\n')
    result = _test(path)
    assert result.exit_code == 1
    assert "has unusable rows: line 97: field 'text' is empty" in result.stdout


def test_a_pack_without_a_gate_is_skipped_unless_required(tmp_path: Path) -> None:
    path = _copy(tmp_path, lambda data: data.pop("gate"))
    result = _test(path)
    assert result.exit_code == 0, result.output
    assert "skipped: no gate: block" in result.stdout
    assert _test(path, "--require-gate").exit_code == 1


def test_a_misspelt_baseline_name_is_a_validation_problem(tmp_path: Path) -> None:
    path = _copy(tmp_path, lambda data: data["gate"]["baseline_f1"].update(harasment=0.5))
    problems = check_policy(path)
    assert len(problems) == 1
    assert problems[0].field == "gate.baseline_f1.harasment"
    assert problems[0].message.startswith("no category by this name; allowed: flagged, harassment")
    line = path.read_text(encoding="utf-8").splitlines()[problems[0].line - 1]
    assert "harasment" in line
