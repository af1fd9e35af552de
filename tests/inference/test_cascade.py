"""The cascade on a labelled sample: fewer LLM calls, no loss of agreement with the labels."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from labelled_posts import LABELLED

from modfleet.errors import FatalError
from modfleet.inference import Classifier, Verdict
from modfleet.inference.cascade import CascadeClassifier
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.policy import Policy

LABELS = dict(LABELLED)


class OracleLLM(Classifier):
    """Stands in for the LLM: answers with the sample's label, and counts its calls."""

    model_id = "oracle"

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        self.texts.extend(texts)
        return [
            Verdict(
                scores={}, categories={"harassment": 1.0 if LABELS[t] else 0.0, "violence": 0.0}
            )
            for t in texts
        ]


def flagged(verdict: Verdict, policy: Policy) -> bool:
    return policy.decide(verdict.policy_scores(policy)).action != "allow"


async def test_cascade_sends_only_uncertain_posts_to_the_llm(small_policy: Policy) -> None:
    """With alt-profanity-check 1.9.1 and the band [0.15, 0.85], 6 of the 36 posts go to the
    LLM: 83% fewer LLM calls than the LLM alone (36), and 35/36 decisions agree with the labels
    (the embedded model alone: 33/36; the LLM alone, here an oracle: 36/36)."""
    texts = [text for text, _ in LABELLED]
    llm = OracleLLM()
    cascade = CascadeClassifier(EmbeddedClassifier(), llm, low=0.15, high=0.85)
    verdicts = await cascade.classify(texts, small_policy)
    alone = await EmbeddedClassifier().classify(texts, small_policy)

    calls = len(llm.texts)
    saved = 1 - calls / len(texts)
    agree = sum(flagged(v, small_policy) == LABELS[t] for v, t in zip(verdicts, texts, strict=True))
    agree_alone = sum(
        flagged(v, small_policy) == LABELS[t] for v, t in zip(alone, texts, strict=True)
    )
    summary = (
        f"LLM calls {calls}/{len(texts)} ({saved:.0%} fewer); agreement cascade "
        f"{agree}/{len(texts)}, embedded alone {agree_alone}/{len(texts)}"
    )
    assert saved >= 0.75, summary
    assert agree >= agree_alone + 1, summary
    assert cascade.texts_escalated == calls
    assert cascade.texts_seen == len(texts)
    assert {v.stage for v, t in zip(verdicts, texts, strict=True) if t in llm.texts} == {"llm"}
    assert sum(v.stage == "embedded" for v in verdicts) == len(texts) - calls


async def test_a_batch_with_no_uncertain_post_never_calls_the_llm(small_policy: Policy) -> None:
    llm = OracleLLM()
    cascade = CascadeClassifier(EmbeddedClassifier(), llm, low=0.4, high=0.6)
    await cascade.classify(["the library opens at nine", "you are a complete idiot"], small_policy)
    assert llm.texts == []


def test_the_band_is_part_of_the_model_id() -> None:
    a = CascadeClassifier(EmbeddedClassifier(), OracleLLM(), 0.1, 0.9)
    b = CascadeClassifier(EmbeddedClassifier(), OracleLLM(), 0.2, 0.9)
    assert a.model_id != b.model_id  # a cached verdict is only reused under the same cascade


def test_an_inverted_band_is_refused() -> None:
    with pytest.raises(FatalError, match="band"):
        CascadeClassifier(EmbeddedClassifier(), OracleLLM(), 0.9, 0.1)
