"""``modfleet eval`` reads a long text as the worker does: in windows, decided on the worst."""

from __future__ import annotations

from posts import FILLER, INSULT

from modfleet.evaluate.scoring import score_texts
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.policy import load_policy
from modfleet.resources import default_policy_path


def test_abuse_in_a_long_texts_middle_counts_in_the_evaluation() -> None:
    # An evaluation that read less than the worker would report recall the fleet does not have.
    pack = load_policy(default_policy_path())
    texts = [FILLER * 900 + INSULT + " " + FILLER * 900, FILLER * 1_800, INSULT]
    scored = score_texts(EmbeddedClassifier(), pack, texts, batch_size=2)
    middle, harmless, short = scored.judgements
    assert middle.action == short.action == "remove"
    assert harmless.action == "allow"
    assert scored.truncated == 0
