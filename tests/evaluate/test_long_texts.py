"""``modfleet eval`` reads a long text as the worker does: in windows, decided on the worst."""

from __future__ import annotations

from posts import FILLER, INSULT

from modfleet.evaluate.scoring import score_texts
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.policy import load_policy
from modfleet.policy.model import TextIn
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


def test_an_html_pack_is_evaluated_on_the_text_its_readers_see() -> None:
    # Its golden set holds posts as the platform writes them, markup and all.
    plain = load_policy(default_policy_path())
    html = plain.model_copy(update={"text": TextIn(format="html")})
    texts = ["f<b></b>u<b></b>c<b></b>k you", "<p>my sourdough starter survived the week</p>"]
    as_html = score_texts(EmbeddedClassifier(), html, texts, batch_size=2).judgements
    as_plain = score_texts(EmbeddedClassifier(), plain, texts, batch_size=2).judgements
    assert [j.action for j in as_html] == ["remove", "allow"]
    assert as_plain[0].action == "allow"
