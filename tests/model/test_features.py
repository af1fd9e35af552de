"""The folded views the heads read: evasions of a word must land on the word's own features."""

from __future__ import annotations

import pytest

from modfleet.model.features import Featuriser, fold, squeeze, words
from modfleet.normalise import normalise


@pytest.mark.parametrize(
    "evasion",
    [
        "you 1d10t",  # l33t
        "you i d i o t",  # spaced out
        "you \u0456d\u0456\u043et",  # Cyrillic look-alikes
        "YOU ÍDÍÖT",  # case and accents
        "you idiooooot",  # stretched
    ],
)
def test_evasions_of_a_word_read_as_the_word(evasion: str) -> None:
    # A stretched letter is kept twice: "idioot" shares all but one n-gram with "idiot".
    assert words(fold(evasion)) in ("you idiot", "you idioot")
    assert squeeze(fold(evasion)) in ("youidiot", "youidioot")


def test_numbers_and_prices_keep_their_meaning_in_the_word_view() -> None:
    assert words(fold("meet at 3 pm, tickets $5, since 2024")) == (
        "meet at 3 pm, tickets $5, since 2024"
    )


def test_removed_spaces_share_the_squeezed_view() -> None:
    assert squeeze(fold("you are an idiot")) == squeeze(fold("youareanidiot"))


def test_an_rtl_override_is_read_as_displayed_by_the_normaliser() -> None:
    # Stored backwards after U+202E, shown forwards: the model must see what readers see.
    assert normalise("hey \u202etoidi na era uoy\u202c ok", 1000).text == "hey you are an idiot ok"
    assert normalise("\u202etoidi", 1000).text == "idiot"  # no pop: to the end of the line


def test_features_are_stateless_and_the_same_in_any_process() -> None:
    a = Featuriser().transform(["you are an idiot", "hello"])
    b = Featuriser().transform(["you are an idiot", "hello"])
    assert (a != b).nnz == 0
    assert a.shape == (2, Featuriser().n_features)
    assert Featuriser.from_json(Featuriser().to_json()) == Featuriser()
