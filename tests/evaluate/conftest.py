"""Shared pieces of the evaluation tests: the fake model, the small pack, the hand-checked file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from eval_fakes import ScoreInText  # noqa: E402

from modfleet.policy import Policy, load_policy  # noqa: E402

DATA = HERE / "data"


@pytest.fixture
def pack_path() -> Path:
    return DATA / "pack.yaml"


@pytest.fixture
def pack(pack_path: Path) -> Policy:
    return load_policy(pack_path)


@pytest.fixture
def hand_csv() -> Path:
    """Eight rows whose metrics are worked out by hand in test_eval_metrics.py."""
    return DATA / "hand.csv"


@pytest.fixture
def fake_model() -> ScoreInText:
    return ScoreInText()


@pytest.fixture
def fake_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``modfleet eval`` load the fake model through the Settings plugin hook."""
    monkeypatch.setenv("MODFLEET_CLASSIFIER_PLUGIN", "eval_fakes:create")
