"""The model shipped in the wheel meets the bars it was trained to (read from its card)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modfleet.inference.embedded import DEFAULT_MODEL
from modfleet.model import artifact
from modfleet.model.train import CATEGORIES
from modfleet.policy import load_policy
from modfleet.resources import default_policy_path

CARD: dict[str, Any] = json.loads((DEFAULT_MODEL / artifact.CARD).read_text(encoding="utf-8"))


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_reaches_roc_auc_080_on_held_out_rows(category: str) -> None:
    test = CARD["metrics"][category]["test"]
    assert test["positives"] >= 50, test  # enough held-out positives for the figure to mean much
    assert test["roc_auc"] >= 0.80, test


def test_it_beats_alt_profanity_check_on_surge_toxicity_which_it_never_saw() -> None:
    surge = CARD["independent"]["surge-toxicity"]
    assert surge["positives"] + surge["negatives"] == 1000
    assert surge["roc_auc"] > 0.843, surge  # alt-profanity-check 1.9.1


def test_ethos_and_surge_are_not_among_its_training_sources() -> None:
    assert not {"ethos", "surge-toxicity"} & set(CARD["sources"])


def test_obfuscation_keeps_most_of_the_recall() -> None:
    for category, row in CARD["evasion"].items():
        for evasion in ("leet", "zero_width", "homoglyph", "rtl_reversed", "mixed"):
            assert row[evasion] >= 0.8 * row["plain"], (category, evasion, row)


def test_it_fits_the_wheel_and_the_default_pack_was_measured_with_it() -> None:
    size = sum(p.stat().st_size for p in Path(DEFAULT_MODEL).iterdir())
    assert size <= 20 * 2**20
    gate = load_policy(default_policy_path()).gate
    assert gate is not None
    assert gate.model is not None
    assert gate.model.startswith(CARD["id"] + "+")
