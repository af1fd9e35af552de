"""A stand-in model for the evaluation tests: each text carries its own score ("score=0.83 ...").

It lives in a module of its own so that ``modfleet eval`` can load it as a classifier plugin
(MODFLEET_CLASSIFIER_PLUGIN=eval_fakes:create), exactly as a third-party backend would be.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from modfleet.inference import Classifier, Verdict
from modfleet.policy import Policy
from modfleet.settings import Settings

_SCORE = re.compile(r"score=([0-9.]+)")


class ScoreInText(Classifier):
    model_id = "score-in-text"

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        return [Verdict(scores={"offensive": _score(t)}) for t in texts]


def _score(text: str) -> float:
    found = _SCORE.search(text)
    if found is None:
        raise AssertionError(f"test text without a score: {text!r}")
    return float(found.group(1))


def create(settings: Settings) -> Classifier:
    return ScoreInText()
