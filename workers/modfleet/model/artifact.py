"""The trained model on disk: ``weights.npz`` (arrays only, never a pickle) and ``card.json``.

``weights.npz`` holds one linear head per category as a sparse column matrix (hashed feature x
category, float16 values: the scores move in the fourth decimal at most) and the intercepts.
``card.json`` holds everything else: the featuriser's parameters, the categories in column
order, the data and metrics the card reports. Loading checks that the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modfleet.errors import FatalError
from modfleet.model.features import CHAR_HASH, Featuriser

WEIGHTS, CARD = "weights.npz", "card.json"
FORMAT = 1  # bump when the layout changes; loading refuses other formats
LABEL_PREFIX = "modfleet:"  # model labels, as a pack's model_labels names them
# A call's texts are featurised this many characters at a time: the arrays over a batch's
# n-grams take up to ~200 bytes a character, so 512 hostile posts at the 20,000-character limit
# held 2 GiB at once (a worker's memory limit is 1 GiB). A usual batch is one slice.
SLICE_CHARS = 1 << 18


@dataclass(frozen=True)
class EmbeddedModel:
    """Hashed n-grams and a linear head per category: ``scores`` is one sparse product."""

    model_id: str
    categories: tuple[str, ...]
    featuriser: Featuriser
    weights: np.ndarray[Any, np.dtype[np.float32]]  # n_features x categories
    intercepts: np.ndarray[Any, np.dtype[np.float32]]
    card: Mapping[str, Any]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(LABEL_PREFIX + c for c in self.categories)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """texts x categories, each a probability 0..1."""
        if not texts:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        parts = [self._probabilities(texts[a:b]) for a, b in slices(texts, SLICE_CHARS)]
        return parts[0] if len(parts) == 1 else np.vstack(parts)

    def _probabilities(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        by_word, by_char = self.featuriser.blocks(texts)
        split = by_word.shape[1]  # the weights' rows: the word view's columns, then the char's
        logits = by_word @ self.weights[:split] + by_char @ self.weights[split:] + self.intercepts
        out: np.ndarray[Any, np.dtype[np.float32]] = 1.0 / (1.0 + np.exp(-logits))
        return out

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """One mapping of model label to probability per text."""
        labels = self.labels
        # tolist() makes the Python floats in C; float() of each numpy scalar cost 2.4 us a
        # post of 6 categories against 0.9 (the same values: float32 widens exactly).
        rows: list[list[float]] = self.probabilities(texts).tolist()
        return [dict(zip(labels, row, strict=True)) for row in rows]


def slices(texts: Sequence[str], most_chars: int) -> list[tuple[int, int]]:
    """Consecutive (start, end) runs of ``texts`` of at most ``most_chars`` characters in all,
    or one text where a text alone is longer."""
    runs: list[tuple[int, int]] = []
    start, held = 0, 0
    for i, text in enumerate(texts):
        if held and held + len(text) > most_chars:
            runs.append((start, i))
            start, held = i, 0
        held += len(text)
    if texts:
        runs.append((start, len(texts)))
    return runs


def save(
    folder: Path,
    weights: np.ndarray[Any, Any],
    intercepts: np.ndarray[Any, Any],
    card: Mapping[str, Any],
) -> list[Path]:
    """Write the artifact into ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    # Column by column (compressed sparse column layout): most hashed features never occur in
    # training, and their weight is exactly zero.
    half = weights.astype(np.float16)
    rows = [np.flatnonzero(half[:, j]) for j in range(half.shape[1])]
    paths = [folder / WEIGHTS, folder / CARD]
    np.savez_compressed(
        paths[0],
        format=np.int32(FORMAT),
        shape=np.asarray(half.shape, dtype=np.int64),
        data=np.concatenate([half[r, j] for j, r in enumerate(rows)]),
        indices=np.concatenate(rows).astype(np.int32),
        indptr=np.cumsum([0, *map(len, rows)]).astype(np.int64),
        intercepts=np.asarray(intercepts, dtype=np.float32),
    )
    paths[1].write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths


def load(folder: Path) -> EmbeddedModel:
    """The model in ``folder``; a :class:`FatalError` naming what is missing or inconsistent."""
    try:
        card = json.loads((folder / CARD).read_text(encoding="utf-8"))
        with np.load(folder / WEIGHTS, allow_pickle=False) as arrays:
            if int(arrays["format"]) != FORMAT:
                raise FatalError(f"{folder}: weights format {int(arrays['format'])}, not {FORMAT}")
            shape = tuple(int(n) for n in arrays["shape"])
            weights = _dense(shape, arrays["data"], arrays["indices"], arrays["indptr"])
            intercepts = np.asarray(arrays["intercepts"], dtype=np.float32)
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise FatalError(f"embedded model in {folder} cannot be read: {exc}") from exc
    try:
        featuriser = Featuriser.from_json(card["featuriser"])
        categories = tuple(str(c) for c in card["categories"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise FatalError(
            f"{folder}: the card's featuriser or categories are incomplete: {exc}"
        ) from exc
    if featuriser.char_hash != CHAR_HASH:
        raise FatalError(
            f"{folder}: trained with character hashing {featuriser.char_hash!r}, but this "
            f"version computes {CHAR_HASH!r}: retrain it with modfleet model train"
        )
    if shape != (featuriser.n_features, len(categories)) or intercepts.shape != (len(categories),):
        raise FatalError(f"{folder}: weights {shape} do not match the card's features/categories")
    return EmbeddedModel(
        model_id=str(card["id"]),
        categories=categories,
        featuriser=featuriser,
        weights=weights,
        intercepts=intercepts,
        card=card,
    )


def _dense(
    shape: tuple[int, ...],
    data: np.ndarray[Any, Any],
    rows: np.ndarray[Any, Any],
    starts: np.ndarray[Any, Any],
) -> np.ndarray[Any, np.dtype[np.float32]]:
    if len(shape) != 2 or len(starts) != shape[1] + 1 or len(data) != len(rows):
        raise ValueError(f"inconsistent sparse weights (shape {shape})")
    out = np.zeros(shape, dtype=np.float32)
    for j in range(shape[1]):
        out[rows[starts[j] : starts[j + 1]], j] = data[starts[j] : starts[j + 1]]
    return out
