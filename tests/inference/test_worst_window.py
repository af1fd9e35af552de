"""A text read in windows is decided on its worst window (``inference.windows.worst``)."""

from __future__ import annotations

from modfleet.inference import Verdict
from modfleet.inference.windows import worst
from modfleet.policy import Policy


def test_each_category_is_scored_at_its_highest_window(policy: Policy) -> None:
    # One window is abusive, another sexual: the post breaks both rules, not the worse alone.
    rude = Verdict(scores={"modfleet:harassment": 0.9, "modfleet:sexual": 0.1}, rationale="rude")
    lewd = Verdict(scores={"modfleet:harassment": 0.2, "modfleet:sexual": 0.8}, rationale="lewd")
    calm = Verdict(scores={"modfleet:harassment": 0.0, "modfleet:sexual": 0.0}, rationale="calm")
    merged = worst([calm, rude, lewd], policy)
    assert merged.scores == {"modfleet:harassment": 0.9, "modfleet:sexual": 0.8}
    assert merged.rationale == "rude"  # the window that scored highest explains the decision
    both = policy.decide(merged.policy_scores(policy))
    alone = policy.decide(rude.policy_scores(policy))
    assert set(both.labels) > set(alone.labels)


def test_a_window_the_model_could_not_read_sends_the_text_to_review(policy: Policy) -> None:
    calm = Verdict(scores={"modfleet:harassment": 0.0})
    garbled = Verdict.unreadable("{not json", "the answer did not parse")
    merged = worst([calm, calm, garbled], policy)
    assert merged.unparseable
    assert merged.raw_output == "{not json"
    assert merged.rationale == "part 3 of 3 of the text: the answer did not parse"


def test_a_window_cut_to_the_models_context_cuts_the_text(policy: Policy) -> None:
    whole, cut = (
        Verdict(scores={"modfleet:harassment": 0.3}),
        Verdict(scores={"modfleet:harassment": 0.1}, cut=True),
    )
    assert worst([whole, cut], policy).cut
    assert not worst([whole, whole], policy).cut


def test_windows_scored_by_different_stages_keep_the_categories_they_were_decided_on(
    policy: Policy,
) -> None:
    # A cascade: one window decided by the embedded model (labels), one by the LLM (categories).
    first = Verdict(scores={"modfleet:harassment": 0.2}, stage="embedded")
    second = Verdict(scores={}, categories={"hate": 0.95}, stage="llm", rationale="slur")
    merged = worst([first, second], policy)
    scores = merged.policy_scores(policy)
    assert scores["hate"] == 0.95
    assert scores["harassment"] == first.policy_scores(policy)["harassment"]
    assert (merged.stage, merged.rationale) == ("llm", "slur")


def test_one_window_is_its_own_verdict(policy: Policy) -> None:
    only = Verdict(scores={"modfleet:harassment": 0.4}, rationale="why")
    assert worst([only], policy) is only


def test_a_model_down_in_one_window_leaves_the_text_to_review(policy: Policy) -> None:
    calm = Verdict(scores={"modfleet:harassment": 0.0})
    down = Verdict(scores={}, rationale="model m is down", model_down=True)
    merged = worst([calm, down], policy)
    assert merged.model_down
    assert merged.rationale == "model m is down"
