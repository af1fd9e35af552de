"""``modfleet model train`` end to end: read, fit, write the artifact, measure, write the card."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modfleet.errors import FatalError
from modfleet.model import artifact
from modfleet.model.card import render_card
from modfleet.model.checks import independent_checks
from modfleet.model.data import TEST, Corpus, read_labelled_file
from modfleet.model.evasion import augmented, evasion_recall
from modfleet.model.features import Featuriser
from modfleet.model.sources import read_shared
from modfleet.model.train import CATEGORIES, fit

CARD_MD = "MODEL_CARD.md"
SPEED_BATCH = 256


@dataclass(frozen=True)
class TrainOptions:
    out: Path
    shared: Path | None = None  # the shared datasets folder, read by modfleet.model.sources
    data: Sequence[Path] = ()  # labelled JSONL/CSV files of our own
    seed: int = 0
    c: float = 4.0
    model_id: str = "modfleet-embedded"
    version: str = "0"


def train(options: TrainOptions, progress: Callable[[str], None] = lambda line: None) -> Path:
    """Train, write the artifact and its card into ``options.out``; the card's path."""
    corpus = Corpus()
    if options.shared is not None:
        read_shared(options.shared, corpus)
    for path in options.data:
        corpus.add(path.name, "modfleet project (Apache-2.0)", read_labelled_file(path, CATEGORIES))
    if not corpus.examples:
        raise FatalError("no training data: pass --shared and/or --data")
    progress(f"{len(corpus.examples)} examples from {len(corpus.sources)} sources")
    featuriser = Featuriser()
    examples = corpus.examples + augmented(corpus.examples, options.seed)
    fitted = fit(examples, featuriser, seed=options.seed, c=options.c, progress=progress)
    full_id = f"{options.model_id}-{options.version}"
    card: dict[str, Any] = {
        "id": full_id,
        "format": artifact.FORMAT,
        "categories": list(CATEGORIES),
        "labels": [artifact.LABEL_PREFIX + c for c in CATEGORIES],
        "featuriser": featuriser.to_json(),
        "training": {
            "seed": options.seed,
            "c": options.c,
            "solver": "liblinear",
            "class_weight": "balanced",
            "obfuscated_copies": "20% of train rows",
        },
        "sources": corpus.sources,
        "metrics": fitted.metrics,
    }
    artifact.save(options.out, fitted.weights, fitted.intercepts, card)
    started = time.perf_counter()
    model = artifact.load(options.out)
    card["speed"] = {"load_s": round(time.perf_counter() - started, 3)}
    progress("measuring: independent sets, evasion, speed")
    card["independent"] = independent_checks(model, options.shared) if options.shared else {}
    card["evasion"] = _evasion(model, corpus, fitted.metrics)
    card["speed"] |= _speed(model, [e.text for e in corpus.split(TEST)])
    artifact.save(options.out, fitted.weights, fitted.intercepts, card)
    (options.out / CARD_MD).write_text(render_card(card), encoding="utf-8")
    return options.out / CARD_MD


def _evasion(
    model: artifact.EmbeddedModel, corpus: Corpus, metrics: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    # The held-out positives of every category, at the threshold that gave its best F1 there.
    positives = {
        c: [e.text for e in corpus.split(TEST) if e.labels.get(c)] for c in model.categories
    }
    thresholds = {c: float(metrics[c]["test"].get("best_f1_threshold", 0.5)) for c in positives}
    return evasion_recall(model, positives, thresholds)


def _speed(model: artifact.EmbeddedModel, texts: list[str]) -> dict[str, Any]:
    sample = texts[:20_000]
    if not sample:
        return {}
    started = time.perf_counter()
    for at in range(0, len(sample), SPEED_BATCH):
        model.probabilities(sample[at : at + SPEED_BATCH])
    seconds = time.perf_counter() - started
    mean_chars = sum(map(len, sample)) / len(sample)
    return {
        "texts_per_s": round(len(sample) / seconds),
        "batch": SPEED_BATCH,
        "texts": len(sample),
        "mean_chars": round(mean_chars),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, one thread",
    }
