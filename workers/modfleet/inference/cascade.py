"""The cascade: a cheap model first, the LLM only where the cheap one is unsure.

Every text is scored by the first stage (the embedded CPU model). A text goes to the second
stage (the LLM) when the first is unsure about *any* category the pack has: a category score
inside the uncertainty band ``[low, high]``, or a category the first stage gives no score for at
all. The others keep the first stage's verdict. Each verdict records the stage that decided, and
the decision carries it (``stage``).

So the cascade is never blind: a pack category the embedded model cannot score sends every post
to the LLM (no saving, but nothing unseen), and a post that is clearly harmless on five
categories and unsure on the sixth still reaches the LLM. What the band trades away is only what
the first stage is confident about, wrongly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from modfleet.errors import FatalError
from modfleet.inference.base import Classifier, Verdict

if TYPE_CHECKING:
    from modfleet.policy import Policy

FIRST, SECOND = "embedded", "llm"


class CascadeClassifier(Classifier):
    def __init__(self, first: Classifier, second: Classifier, low: float, high: float) -> None:
        if not 0.0 <= low <= high <= 1.0:
            raise FatalError(f"cascade band [{low}, {high}] is not within 0..1 and ordered")
        self.first = first
        self.second = second
        self.low = low
        self.high = high
        # The band is part of the id: a cached verdict is only valid for the same cascade.
        self.model_id = f"cascade[{low:g}-{high:g}]({first.model_id}|{second.model_id})"
        self.cross_post_cache = first.cross_post_cache or second.cross_post_cache
        self.texts_seen = 0
        self.texts_escalated = 0  # sent to the second stage

    def check_pack(self, policy: Policy) -> None:
        self.first.check_pack(policy)
        self.second.check_pack(policy)

    def cache_scope(self) -> str:
        return f"cascade[{self.low:g}-{self.high:g}]({self.first.cache_scope()}|" + (
            f"{self.second.cache_scope()})"
        )

    def uncertain(self, verdict: Verdict, policy: Policy) -> bool:
        scores = verdict.policy_scores(policy)
        return any(
            name not in scores or self.low <= scores[name] <= self.high
            for name in policy.categories
        )

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        first = await self.first.classify(texts, policy)
        unsure = [i for i, verdict in enumerate(first) if self.uncertain(verdict, policy)]
        self.texts_seen += len(texts)
        self.texts_escalated += len(unsure)
        second = await self.second.classify([texts[i] for i in unsure], policy) if unsure else []
        if len(second) != len(unsure):
            raise FatalError(f"second stage returned {len(second)} verdicts for {len(unsure)}")
        out = [replace(verdict, stage=FIRST) for verdict in first]
        for i, verdict in zip(unsure, second, strict=True):
            out[i] = replace(verdict, stage=SECOND)
        return out

    async def close(self) -> None:
        await self.first.close()
        await self.second.close()
