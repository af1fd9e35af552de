"""Independent checks: public sets the model never trains on, scored after training.

surge-toxicity (MIT) is the bar set by the issue: alt-profanity-check reaches ROC-AUC 0.843 on
it. Ethos (GPL-3.0) is not trained on, so that the shipped weights carry no GPL data; it is a
second, independent measure of hate.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modfleet.model.artifact import EmbeddedModel
from modfleet.model.data import MAX_CHARS
from modfleet.model.train import binary_metrics
from modfleet.normalise import normalise

TOXIC = ("harassment", "hate", "violence", "sexual")


def _read(path: Path, text: str, label: Callable[[dict[str, str]], bool], sep: str = ",") -> Any:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=sep))
    texts = [normalise(r[text], MAX_CHARS).text for r in rows]
    return texts, np.asarray([label(r) for r in rows], dtype=bool)


def independent_checks(model: EmbeddedModel, shared: Path) -> dict[str, dict[str, Any]]:
    """Metrics on surge-toxicity (any toxic category) and Ethos (hate), where the files exist."""
    out: dict[str, dict[str, Any]] = {}
    surge = shared / "surge-toxicity" / "toxicity_en.csv"
    if surge.is_file():
        texts, truth = _read(surge, "text", lambda r: r["is_toxic"].strip() == "Toxic")
        probs = model.probabilities(texts)
        columns = [model.categories.index(c) for c in TOXIC if c in model.categories]
        out["surge-toxicity"] = {
            "licence": "MIT",
            "label": "is_toxic = Toxic",
            "score": "highest of " + ", ".join(TOXIC),
            **binary_metrics(truth, probs[:, columns].max(axis=1)),
        }
    ethos = shared / "ethos" / "Ethos_Dataset_Binary.csv"
    if ethos.is_file() and "hate" in model.categories:
        texts, truth = _read(ethos, "comment", lambda r: float(r["isHate"]) >= 0.5, sep=";")
        probs = model.probabilities(texts)[:, model.categories.index("hate")]
        out["ethos"] = {
            "licence": "GPL-3.0 (measured only)",
            "label": "isHate >= 0.5",
            "score": "hate",
            **binary_metrics(truth, probs),
        }
    return out
