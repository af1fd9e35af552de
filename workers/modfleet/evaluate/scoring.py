"""Texts through the stream worker's own steps: normalise, classify in batches, decide."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modfleet.errors import FatalError
from modfleet.inference import Classifier
from modfleet.inference.base import Verdict
from modfleet.inference.windows import worst
from modfleet.normalise import normalise, windows
from modfleet.policy.model import Judgement, Policy


@dataclass(frozen=True)
class Scored:
    """Per text: the category scores the pack saw, and its judgement."""

    scores: list[dict[str, float]]
    judgements: list[Judgement]
    seconds: float  # normalise + classify + decide, without loading the model
    truncated: int  # texts longer than the pack's windows read, cut as the worker cuts them

    @property
    def texts_per_s(self) -> float:
        return len(self.scores) / self.seconds if self.seconds > 0 else 0.0

    def subset(self, rows: Sequence[int]) -> Scored:
        """These rows only (for per-group metrics); the timing is the whole run's."""
        return Scored(
            [self.scores[i] for i in rows],
            [self.judgements[i] for i in rows],
            self.seconds,
            self.truncated,
        )


def score_texts(
    classifier: Classifier,
    policy: Policy,
    texts: Sequence[str],
    *,
    batch_size: int,
    on_batch: Callable[[int], None] = lambda n: None,
) -> Scored:
    """Score ``texts`` batch by batch; ``on_batch`` hears how many each batch held.

    The classifier is closed afterwards: its connections belong to this call's event loop.
    """
    if batch_size < 1:
        raise FatalError(f"batch size must be at least 1, not {batch_size}")
    return asyncio.run(_score(classifier, policy, texts, batch_size, on_batch))


async def _score(
    classifier: Classifier,
    policy: Policy,
    texts: Sequence[str],
    batch_size: int,
    on_batch: Callable[[int], None],
) -> Scored:
    scores: list[dict[str, float]] = []
    truncated = 0
    limit, count = policy.limits.max_text_chars, policy.limits.max_windows
    text_format = policy.text.format
    started = time.perf_counter()
    try:
        for at in range(0, len(texts), batch_size):
            # The model must see what it sees in production: the canonical text (HTML rendered
            # for a pack that says so), in windows when it is long, possibly cut.
            norms = [normalise(t, limit, count, text_format) for t in texts[at : at + batch_size]]
            truncated += sum(n.truncated for n in norms)
            parts = [windows(n.text, limit) for n in norms]
            asked = [part for text in parts for part in text]
            verdicts = await classifier.classify(asked, policy)
            if len(verdicts) != len(asked):
                raise FatalError(
                    f"model {classifier.model_id} returned {len(verdicts)} verdicts "
                    f"for {len(asked)} texts"
                )
            scores += [v.policy_scores(policy) for v in _per_text(parts, verdicts, policy)]
            on_batch(len(norms))
    finally:
        await classifier.close()
    judgements = [policy.decide(s) for s in scores]
    return Scored(scores, judgements, time.perf_counter() - started, truncated)


def _per_text(parts: list[list[str]], verdicts: list[Verdict], policy: Policy) -> list[Verdict]:
    """One verdict a text, from those of its windows, as the worker decides it."""
    out, at = [], 0
    for windows_of_text in parts:
        out.append(worst(verdicts[at : at + len(windows_of_text)], policy))
        at += len(windows_of_text)
    return out
