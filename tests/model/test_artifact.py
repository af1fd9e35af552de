"""The shipped model as the worker calls it: a batch of any size, a bounded amount of memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hostile import within_seconds

from modfleet.inference.embedded import DEFAULT_MODEL
from modfleet.model import artifact
from modfleet.model.artifact import EmbeddedModel, slices


@pytest.fixture(scope="module")
def model() -> EmbeddedModel:
    return artifact.load(DEFAULT_MODEL)


def test_slices_hold_every_text_once_and_no_more_than_asked() -> None:
    texts = ["a" * n for n in (3, 4, 2, 9, 1, 1, 0, 5)]
    runs = slices(texts, 6)
    assert runs == [(0, 1), (1, 3), (3, 4), (4, 7), (7, 8)]  # the 9-character text alone
    assert slices([], 6) == []


def test_a_batch_scores_the_same_in_slices(
    model: EmbeddedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"post {i}: you are an 1d10t \U0001f600 i d i o t" * (i % 4 + 1) for i in range(40)]
    whole = model.probabilities(texts)
    monkeypatch.setattr(artifact, "SLICE_CHARS", 200)
    assert len(slices(texts, 200)) > 10
    assert np.array_equal(model.probabilities(texts), whole)


def test_a_hostile_batch_costs_bounded_memory(model: EmbeddedModel) -> None:
    # Posts at the default pack's 20,000-character limit made of the shortest words, some
    # astral (four UTF-8 bytes): the most n-grams and bytes a character. 128 of them held
    # about 500 MiB at once when a call's arrays spanned the whole batch; a full batch of 512,
    # past a worker's 1 GiB memory limit, and the same batch again on every redelivery.
    text = ("x\U00020000 y " * 5_000)[:20_000]
    tracemalloc.start()
    try:
        with within_seconds(30):
            scored = model.probabilities([text] * 128)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scored.shape == (128, len(model.categories))
    assert peak < 128 << 20, f"{peak / 2**20:.0f} MiB at the peak"
