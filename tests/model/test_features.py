"""The folded views the heads read: evasions of a word must land on the word's own features."""

from __future__ import annotations

import re

import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]
from hostile import within_seconds
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import HashingVectorizer  # type: ignore[import-untyped]

from modfleet.model.features import (
    _FOLD,
    Featuriser,
    char_ngram_matrix,
    fold,
    squeeze,
    views,
    word_matrix,
    words,
)
from modfleet.model.wordview import LEET_TABLE
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


@pytest.mark.parametrize(
    ("disguised", "read"),
    [
        ("y\u0585\u057d idi\u0585t", "you idiot"),  # Armenian o, u
        ("you \u13a5\u13a0\u13a5o\u13a2", "you idiot"),  # Cherokee I, D, T
        ("you \ua4e2\ua4d4\ua4f4\ua4d1i\ua4d3", "you stupid"),  # Lisu
        ("\u15b4\u144cck you", "fuck you"),  # Canadian syllabics F, U
        ("you \u0269d\u0269ot", "you idiot"),  # Latin small iota
        ("\u028f\u1d0f\u028b idiot", "you idiot"),  # small capitals, and v with hook for u
        ("you idi\u2c9ft", "you idiot"),  # Coptic o
        ("you idi\u2d54t", "you idiot"),  # Tifinagh yar
        ("\U000118dc\U000118e0\U000118d8 idi\U000118e0t", "you idiot"),  # Warang Citi, astral
    ],
)
def test_look_alike_letters_of_any_script_read_as_the_latin_they_imitate(
    disguised: str, read: str
) -> None:
    # Unicode's confusables (UTS #39), not only the Cyrillic and Greek a hand table held: the
    # normaliser leaves these as they are (NFKC keeps them), so the model must see through them.
    text = normalise(disguised, 1000).text
    assert words(fold(text)) == read
    assert squeeze(fold(text)) == read.replace(" ", "")
    assert fold(text * 40) == fold(text) * 40  # a long text (in arrays) folds them alike


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


def _reference_column(gram: str, bits: int) -> int:
    # The scheme the shipped weights were trained with, in plain integers: a change to the
    # vectorised hash that moves any column would silently scramble every score.
    value = len(gram)
    for char in gram:
        value = (value * 1_000_003 + ord(char)) % 2**64
    return ((value * 0x9E3779B97F4A7C15) % 2**64) >> (64 - bits)


@pytest.mark.parametrize(
    ("bits", "ngrams"),
    # 30 bits: more rows than 32-bit keys hold, so the batch is keyed in 64 bits.
    [(18, (3, 5)), (30, (3, 5)), (18, (1, 6)), (18, (4, 4))],
)
def test_character_ngrams_are_hashed_as_documented(bits: int, ngrams: tuple[int, int]) -> None:
    texts = ["idiot", "", "ab", "\u00e9t\u00e9\U0001f600", "stupid", "you idiot", "a"]
    _assert_documented(texts, ngrams, bits)


@pytest.mark.parametrize("rows", [4, 5])
def test_character_ngrams_at_the_edge_of_32_bit_keys(rows: int) -> None:
    # 4 rows of 2**30 columns are exactly the 32-bit keys; a fifth needs 64.
    _assert_documented(["idiot", "stupid", "you idiot", "ab", "moron"][:rows], (3, 5), 30)


def _assert_documented(texts: list[str], ngrams: tuple[int, int], bits: int) -> None:
    matrix = char_ngram_matrix(texts, ngrams, bits)
    sizes = range(ngrams[0], ngrams[1] + 1)
    for row, text in enumerate(texts):
        grams = {text[i : i + n] for n in sizes for i in range(len(text) - n + 1)}
        expected = sorted({_reference_column(g, bits) for g in grams})
        assert sorted(matrix[row].indices.tolist()) == expected, text
        if grams:  # binary, then L2-normalised
            assert abs(float((matrix[row].data ** 2).sum()) - 1.0) < 1e-6


def test_a_lone_surrogate_is_hashed_not_an_error() -> None:
    assert Featuriser().transform(["half a pair \ud800 here"]).nnz > 0


def _sklearn_word_view(views: list[str], bits: int, ngrams: tuple[int, int]) -> sp.csr_matrix:
    # The vectoriser the shipped weights were trained with, configured as it was.
    return HashingVectorizer(
        analyzer="word",
        ngram_range=ngrams,
        n_features=1 << bits,
        alternate_sign=False,
        lowercase=False,
        token_pattern=r"(?u)\b\w+\b",
        norm="l2",
        binary=True,
        dtype="float32",
    ).transform(views)


@pytest.mark.parametrize(
    ("bits", "ngrams"),
    [(19, (1, 2)), (10, (1, 2)), (19, (2, 3)), (19, (1, 1))],  # 10: collisions, merged alike
)
def test_word_columns_are_those_of_the_vectoriser_the_model_was_trained_with(
    bits: int, ngrams: tuple[int, int]
) -> None:
    views = [
        words(fold(t))
        for t in (
            "you are an idiot, you are",
            "",
            "!!! ...",
            "a",
            "the the the the",
            "ünïcödé wörds and 数字 ١٢٣ mixed_with_under_scores",
            "half a pair \ud800 here",
            " ".join(f"w{i % 37}" for i in range(500)),
        )
    ]
    _assert_same_as_vectoriser(views, ngrams, bits)


# Word characters of every kind \w knows (astral letters, other scripts' digits, a titlecase
# letter, superscripts, fractions) and the non-word ones between them (a combining accent, a
# zero-width space, an emoji, a lone surrogate, punctuation, newlines and tabs).
_WORD_CHARS = st.sampled_from(
    [
        *"ab9_ \n\t-!",
        *("\u00fc", "\u6570", "\u0661", "\U0001d41a", "\U00020000", "\u01c5", "\u00b2"),
        *("\u00bd", "\u0301", "\u200b", "\U0001f600", "\ud800"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(_WORD_CHARS, max_size=40), min_size=1, max_size=12))
def test_word_columns_match_the_vectoriser_whatever_the_characters(texts: list[str]) -> None:
    # Tokens are found for the whole batch at once: no token may run from one text into the
    # next, and \w must mean what it means to re, astral code points included.
    _assert_same_as_vectoriser(texts, (1, 2), 19)


@pytest.mark.parametrize("ngrams", [(1, 2), (1, 3)])
def test_word_columns_of_long_and_multibyte_tokens_match_the_vectoriser(
    ngrams: tuple[int, int],
) -> None:
    # Every byte length from 0 to past 256 (where n-grams are hashed one by one rather than
    # together), in one-, two-, three- and four-byte letters.
    texts = [letter * n for letter in ("x", "\u00e9", "\u6570", "\U0001d41a") for n in range(70)]
    texts += ["x" * 300, "short " + "y" * 253 + " z", "\u00e9" * 200 + " a b"]
    _assert_same_as_vectoriser(texts, ngrams, 19)


def _assert_same_as_vectoriser(texts: list[str], ngrams: tuple[int, int], bits: int) -> None:
    ours, theirs = word_matrix(texts, ngrams, bits), _sklearn_word_view(texts, bits, ngrams)
    assert ours.shape == theirs.shape
    assert (ours.indptr == theirs.indptr).all()
    assert (ours.indices == theirs.indices).all()
    if ours.nnz:
        assert abs(ours.data - theirs.data).max() < 1e-6


def test_character_ngrams_of_an_empty_batch_or_short_texts_are_empty_rows() -> None:
    assert char_ngram_matrix([], (3, 5), 18).shape == (0, 1 << 18)
    short = char_ngram_matrix(["", "ab"], (3, 5), 18)
    assert short.shape == (2, 1 << 18)
    assert short.nnz == 0
    assert word_matrix([], (1, 2), 18).shape == (0, 1 << 18)


def test_scores_come_from_both_views_of_the_text() -> None:
    featuriser = Featuriser()
    by_word, by_char = featuriser.blocks(["you are an idiot"])
    whole = featuriser.transform(["you are an idiot"])
    assert by_word.nnz > 0
    assert by_char.nnz > 0
    assert whole.nnz == by_word.nnz + by_char.nnz
    assert (whole[:, : by_word.shape[1]] != by_word).nnz == 0
    assert (whole[:, by_word.shape[1] :] != by_char).nnz == 0


# Latin, dotless and dotted i, l33t, spacing, newlines and tabs, capital, medial and final
# sigma, Cyrillic a, sharp s (casefolds to two letters), a lone surrogate.
_HOSTILE_CHARS = st.sampled_from(
    [
        *"aAbiIlo01345@$!|.*_- \n\t",
        "\u0131",
        "\u0130",
        "\u03a3",
        "\u03c2",
        "\u0430",
        "\u00df",
        "\ud800",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(_HOSTILE_CHARS, max_size=30), max_size=8))
def test_a_batch_reads_each_text_as_it_would_alone(texts: list[str]) -> None:
    # The batch is read in one pass over its texts joined by newlines: no text's views may
    # depend on its neighbours, whatever the texts hold (newlines, final sigmas, l33t, spacing).
    folded = [fold(t) for t in texts]
    assert views(texts) == ([words(f) for f in folded], [squeeze(f) for f in folded])


# The patterns fold and squeeze were defined by: the references for what they must return.
_REPEAT_PATTERN = re.compile(r"(.)\1{2,}")
_NOT_LETTER_PATTERN = re.compile(
    r"[^a-z\u00df-\u024f\u0370-\u03ff\u0400-\u04ff\u0590-\u06ff\u0900-\uffff]+"
)


def _assert_fold_and_squeeze_as_defined(text: str) -> None:
    folded = _REPEAT_PATTERN.sub(r"\1\1", text.casefold().translate(_FOLD))
    assert fold(text) == folded
    assert squeeze(folded) == _NOT_LETTER_PATTERN.sub("", folded.translate(LEET_TABLE))


@settings(max_examples=300, deadline=None)
@given(st.text(_WORD_CHARS | _HOSTILE_CHARS, max_size=600))
def test_fold_and_squeeze_return_what_their_patterns_define(text: str) -> None:
    _assert_fold_and_squeeze_as_defined(text)


@pytest.mark.parametrize(
    "text",
    [
        "no letter here thrice in a row, " * 10,  # long: checked for a repeat, none found
        "no letter here thrice in a row, " * 10 + "until noooow",
        "lines\n\n\nof a long text, " * 20,  # three newlines: checked, not a repeat to fold
        "\U0001f600\U0001f600\U0001f600 " * 100 + "\ud800\ud800\ud800" + "\u0130" * 300,
    ],
)
def test_long_texts_fold_and_squeeze_as_defined(text: str) -> None:
    _assert_fold_and_squeeze_as_defined(text)


@pytest.mark.parametrize("word", ["ab", "a.", "ab-", "b\u0430", "a1"])
def test_one_long_word_costs_its_length_not_its_square(word: str) -> None:
    # The reference pattern took 2 s for a 20,000-letter word (the default pack's text limit)
    # and would take minutes for this one; the model scores short posts on the event loop.
    # (Not one letter repeated: folding reads "aaaa" as "aa" before any word is looked at.)
    text = word * (200_000 // len(word))
    with within_seconds(5):
        word_views, squeezed = views([text, "you 1d10t"])
    assert word_views[1] == "you idiot"
    assert len(squeezed[0]) > 0


@pytest.mark.parametrize("token", ["w" * 65, "w" * 300])
def test_many_long_words_cost_their_length(token: str) -> None:
    # Past 256 bytes a word n-gram is hashed on its own: a post of nothing but such words
    # (about 4 MB, the largest post read) must still be scored in seconds, not minutes.
    text = " ".join([token] * (4_000_000 // (len(token) + 1)))
    with within_seconds(20):
        matrix = word_matrix([text, "you idiot"], (1, 2), 19)
    assert matrix[0].nnz == 2  # the word and the word twice: binary, whatever the count
    assert matrix[1].nnz == 3
