"""A batch's long texts are asked window by window, and each gets one verdict or one reason."""

from __future__ import annotations

from modfleet.inference import Verdict
from modfleet.policy import Policy, load_policy
from modfleet.policy.model import Limits
from modfleet.resources import default_policy_path
from modfleet.stream.infer import Results
from modfleet.stream.windows import Windows

LIMITS = Limits(max_text_chars=100, max_windows=4)
POLICY: Policy = load_policy(default_policy_path())


def _scored(read: Windows, scores: dict[str, float]) -> Results:
    return Results({key: Verdict(scores=scores) for key in read.keys}, {})


def test_short_texts_are_asked_as_they_are() -> None:
    read = Windows(["a", "b"], ["hello", "there"], LIMITS)
    assert (read.keys, read.texts) == (["a", "b"], ["hello", "there"])
    results = _scored(read, {"modfleet:harassment": 0.1})
    assert read.fold(results, POLICY) is results


def test_a_long_text_is_asked_in_windows_and_folded_to_one_verdict() -> None:
    long = "x" * 250
    read = Windows(["short", "long"], ["hi", long], LIMITS)
    assert read.texts[0] == "hi"
    assert len(read.texts) == 4  # 100 + 2 x 88 characters: three windows
    assert all(len(text) <= 100 for text in read.texts)
    assert len(set(read.keys)) == 4
    found = {key: Verdict(scores={"modfleet:harassment": 0.1}) for key in read.keys}
    found[read.keys[2]] = Verdict(scores={"modfleet:harassment": 0.9})
    folded = read.fold(Results(found, {}), POLICY)
    assert set(folded.found) == {"short", "long"}
    assert folded.found["long"].scores == {"modfleet:harassment": 0.9}
    assert folded.failed == {}


def test_a_window_given_up_on_gives_up_its_text_alone() -> None:
    read = Windows(["short", "long"], ["hi", "y" * 250], LIMITS)
    found = {key: Verdict(scores={"modfleet:harassment": 0.1}) for key in read.keys}
    lost = read.keys[3]
    del found[lost]
    folded = read.fold(Results(found, {lost: "RecoverableError: timed out"}), POLICY)
    assert set(folded.found) == {"short"}
    assert folded.failed == {"long": "part of the text: RecoverableError: timed out"}


def test_garbled_scores_in_one_window_cost_only_their_text() -> None:
    read = Windows(["short", "long"], ["hi", "z" * 250], LIMITS)
    found = {key: Verdict(scores={"modfleet:harassment": 0.1}) for key in read.keys}
    found[read.keys[1]] = Verdict(scores={"modfleet:harassment": float("nan")})
    folded = read.fold(Results(found, {}), POLICY)
    assert set(folded.found) == {"short"}
    assert "NaN" in folded.failed["long"]


def test_a_window_the_backend_left_unanswered_is_never_decided_without() -> None:
    read = Windows(["long"], ["w" * 250], LIMITS)
    found = {key: Verdict(scores={"modfleet:harassment": 0.1}) for key in read.keys[:-1]}
    folded = read.fold(Results(found, {}), POLICY)
    assert folded.found == {}
    assert folded.failed == {"long": "part of the text: no verdict"}
