"""The project's functional set (datasets/functional): the small labelled data these tests use."""

from __future__ import annotations

from pathlib import Path

import pytest

from modfleet.model.build import TrainOptions, train

FUNCTIONAL = Path(__file__).parents[2] / "datasets" / "functional" / "functional.jsonl"


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the functional set alone: seconds, not minutes."""
    out = tmp_path_factory.mktemp("model")
    train(TrainOptions(out=out, data=[FUNCTIONAL], seed=3, version="test"))
    return out
