"""Obfuscated variants of abusive posts, and the model's recall on them against the plain text.

Each transform imitates a common evasion; every variant goes through the worker's normaliser
first, as a real post would, so the measure covers the normaliser and the features together.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from modfleet.model.artifact import EmbeddedModel
from modfleet.model.data import MAX_CHARS, TRAIN, Example
from modfleet.normalise import normalise

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "$", "t": "7"})
# Latin letters to their Cyrillic look-alikes.
_HOMOGLYPH = str.maketrans(
    {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "i": "\u0456"}
)
ZWSP, RLO, PDF = "\u200b", "\u202e", "\u202c"


def leet(text: str) -> str:
    return text.translate(_LEET)


def spaced(text: str) -> str:
    """Every other word's letters spaced out: "you are an i d i o t"."""
    words = text.split(" ")
    return " ".join(" ".join(w) if i % 2 else w for i, w in enumerate(words))


def squashed(text: str) -> str:
    return text.replace(" ", "")


def zero_width(text: str) -> str:
    return ZWSP.join(text)


def homoglyph(text: str) -> str:
    return text.translate(_HOMOGLYPH)


def rtl_reversed(text: str) -> str:
    """Stored backwards after a right-to-left override: it displays as the plain text."""
    return RLO + text[::-1] + PDF


def mixed(text: str) -> str:
    return zero_width(leet(homoglyph(text)))


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "leet": leet,
    "spaced": spaced,
    "squashed": squashed,
    "zero_width": zero_width,
    "homoglyph": homoglyph,
    "rtl_reversed": rtl_reversed,
    "mixed": mixed,
}


def evasion_recall(
    model: EmbeddedModel,
    positives: Mapping[str, Sequence[str]],
    thresholds: Mapping[str, float],
    *,
    limit: int = 400,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per category: recall of the plain positives and of each obfuscated variant of them."""
    out: dict[str, dict[str, Any]] = {}
    rng = random.Random(seed)
    for category, texts in positives.items():
        sample = list(texts) if len(texts) <= limit else rng.sample(list(texts), limit)
        if not sample:
            continue
        column = model.categories.index(category)
        threshold = thresholds[category]
        row: dict[str, Any] = {"positives": len(sample), "threshold": threshold}
        for name, transform in {"plain": lambda t: t, **TRANSFORMS}.items():
            seen = [normalise(transform(t), MAX_CHARS).text for t in sample]
            hits = model.probabilities(seen)[:, column] >= threshold
            row[name] = round(float(np.mean(hits)), 4)
        out[category] = row
    return out


def augmented(examples: Sequence[Example], seed: int, share: float = 0.2) -> list[Example]:
    """Obfuscated copies of a seeded ``share`` of the training rows, labels unchanged.

    Without them the heads lean on the word view, which a l33t or spaced word leaves empty; with
    them the character view, which those transforms barely touch, carries weight of its own.
    Negatives are copied as often as positives, so obfuscation itself is not a signal.
    """
    rng = random.Random(seed)
    names = ("leet", "spaced", "squashed", "mixed")
    out = []
    for e in examples:
        if e.split != TRAIN or rng.random() >= share:
            continue
        text = TRANSFORMS[rng.choice(names)](e.text)
        out.append(replace(e, text=normalise(text, MAX_CHARS).text))
    return out
