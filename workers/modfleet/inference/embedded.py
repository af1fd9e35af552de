"""The default CPU model: alt-profanity-check's linear SVM, shipped inside its wheel.

It knows one label, ``offensive``; the policy maps that label onto its categories. It runs
anywhere without a download, which is why the embedded stack and the tests use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING

from modfleet.errors import FatalError
from modfleet.inference.base import Classifier, Verdict

if TYPE_CHECKING:
    from modfleet.policy import Policy

LABEL = "offensive"


class EmbeddedClassifier(Classifier):
    def __init__(self) -> None:
        try:
            from profanity_check import predict_prob
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise FatalError("alt-profanity-check is not installed") from exc
        self._predict_prob = predict_prob
        self.model_id = f"alt-profanity-check-{metadata.version('alt-profanity-check')}"

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        if not texts:
            return []
        # scikit-learn drops the GIL in its sparse kernels; a thread keeps the event loop (and
        # with it the Kafka heartbeats) responsive while a large batch is scored.
        probs = await asyncio.to_thread(self._predict_prob, list(texts))
        return [Verdict(scores={LABEL: float(p)}) for p in probs]
