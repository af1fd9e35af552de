"""`modfleet model train`: deterministic, a card that says what it rests on, a loadable artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from modfleet.cli import main
from modfleet.errors import FatalError
from modfleet.model import artifact
from modfleet.model.build import TrainOptions, train
from modfleet.model.train import CATEGORIES

FUNCTIONAL = Path(__file__).parents[2] / "datasets" / "functional" / "functional.jsonl"


def _card(folder: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((folder / artifact.CARD).read_text(encoding="utf-8"))
    return data


def test_the_same_seed_reproduces_the_metrics_and_weights(
    tmp_path: Path, small_model: Path
) -> None:
    result = CliRunner().invoke(
        main,
        ["model", "train", "--data", str(FUNCTIONAL), "--seed", "3", "--version", "test",
         "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _card(tmp_path)["metrics"] == _card(small_model)["metrics"]
    assert _card(tmp_path)["evasion"] == _card(small_model)["evasion"]
    again, first = artifact.load(tmp_path), artifact.load(small_model)
    assert np.array_equal(again.weights, first.weights)


def test_every_category_is_scored_and_measured_on_held_out_rows(small_model: Path) -> None:
    card = _card(small_model)
    metrics = card["metrics"]
    assert isinstance(metrics, dict)
    assert set(metrics) == set(CATEGORIES)
    for name, m in metrics.items():
        test = m["test"]
        assert min(test["positives"], test["negatives"]) > 0, name
        # Held-out templates of the same functionalities: far from chance even on 600 rows.
        assert test["roc_auc"] >= 0.7, (name, test)
    assert (small_model / "MODEL_CARD.md").read_text(encoding="utf-8").count("| ") > 20


def test_the_model_separates_threats_from_violent_news(small_model: Path) -> None:
    model = artifact.load(small_model)
    scores = model.scores(
        [
            "I'm going to stab you tonight, I know where you live",
            "Police report a stabbing downtown",
        ]
    )
    assert scores[0]["modfleet:violence"] > scores[1]["modfleet:violence"] + 0.2


def test_weights_load_without_pickle_and_a_mismatch_is_refused(
    tmp_path: Path, small_model: Path
) -> None:
    with np.load(small_model / artifact.WEIGHTS, allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)
    card = _card(small_model)
    card["categories"] = ["harassment"]  # the weights have six columns
    (tmp_path / artifact.CARD).write_text(json.dumps(card), encoding="utf-8")
    (tmp_path / artifact.WEIGHTS).write_bytes((small_model / artifact.WEIGHTS).read_bytes())
    with pytest.raises(FatalError, match="do not match"):
        artifact.load(tmp_path)
    with pytest.raises(FatalError, match="cannot be read"):
        artifact.load(tmp_path / "missing")


def test_a_category_without_enough_positives_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "thin.jsonl"
    rows = [{"text": f"post number {i}", "spam": i < 2} for i in range(40)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(FatalError, match="'harassment': 0 positive"):
        train(TrainOptions(out=tmp_path / "m", data=[data]))


def test_a_bad_label_names_the_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "a", "spam": "maybe"}\n', encoding="utf-8")
    with pytest.raises(FatalError, match=r"bad.jsonl:1: field 'spam' is 'maybe'"):
        train(TrainOptions(out=tmp_path / "m", data=[data]))
