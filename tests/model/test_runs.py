"""Words run together in small letters (``model/runs.py``): which runs are cut, which are left
as written, and that a hostile post costs its length."""

from __future__ import annotations

import pytest
import wordninja  # type: ignore[import-untyped]
from hostile import within_seconds

from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.model.readings import second_reading
from modfleet.model.runs import ALIKE, LONGEST_RUN, MOST_ALIKE, MOST_LETTERS, Runs, runs_for

_LANGUAGE = wordninja.DEFAULT_LANGUAGE_MODEL
_KNOWN = _LANGUAGE._wordcost
_HARM = frozenset({"kill", "die", "idiot", "fire", "dick", "dead"})


@pytest.fixture(scope="module")
def runs() -> Runs:
    # The real segmenter and word list; harm words chosen here, so that what is tested is the
    # rules, whatever a retrained model weighs.
    return Runs(_KNOWN, _HARM, _LANGUAGE.split)


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("killyourself", "kill yourself"),
        ("#godieinafire now", "#go die in a fire now"),
        ("KILLYOURSELF, Youareanidiot.", "kill yourself, you are an idiot."),
        ("killyourself and killyourself", "kill yourself and kill yourself"),
        # Words, even those holding a harm word, and names that hold none: as written.
        ("skilled understanding firefighters diesel", None),
        ("youngkin murkowski rediculous", None),
        # Compounds, not phrases: no word that glues a phrase ("dick head" is not an insult).
        ("dickhead braindead diebitch", None),
        # Runs beside a digit, an underscore or a letter of another script are tags and names.
        ("user_killyourself killyourself99 кkillyourself", None),
        ("killit", "kill it"),
        ("a" * (LONGEST_RUN - 3) + "kill", None),  # past the longest run cut
    ],
)
def test_a_run_is_cut_where_it_holds_a_harm_word(runs: Runs, text: str, cut: str | None) -> None:
    assert runs.cut(text) == (text if cut is None else cut)


def test_addresses_and_handles_are_not_cut(runs: Runs) -> None:
    text = "@killyourself https://example.org/killyourself a.b@killyourself.org"
    assert second_reading(text, runs) is None
    assert second_reading(f"{text} killyourself", runs) == f"{text} kill yourself"


def test_punctuation_read_through_then_cut(runs: Runs) -> None:
    # "kill,yourself" is read through to one run, which the cutter cuts again.
    assert second_reading("k,illyourself", runs) == "kill yourself"


def test_a_text_splits_a_bounded_number_of_letters_in_its_order(runs: Runs) -> None:
    calls: list[str] = []

    def split(run: str) -> list[str]:
        calls.append(run)
        return list(_LANGUAGE.split(run))

    counted = Runs(_KNOWN, _HARM, split)
    decoys = [f"kill{chr(97 + a)}{chr(97 + b)}qz" for a in range(5) for b in range(5)]
    budget = MOST_LETTERS // len(decoys[0])
    text = " ".join([*decoys[:budget], "killyourself", *decoys[budget:]])
    # The decoys took the letters (and are cut: each holds "kill"); the run after them is not.
    assert " killyourself " in counted.cut(text)
    assert calls == decoys[:budget]
    assert counted.cut("killyourself " + " ".join(decoys)).startswith("kill yourself ")


def _distinct_runs(count: int) -> str:
    # "killaaa killaab ...": every run unknown, holding a harm word, and no two alike.
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        f"kill{letters[i // 676 % 26]}{letters[i // 26 % 26]}{letters[i % 26]}"
        for i in range(count)
    )


@pytest.mark.parametrize(
    "unit", ["killqzxv ", "killyourself ", "k", "kill", "akillb1 ", "dief ", "distinct"]
)
def test_a_hostile_post_costs_its_length(runs: Runs, unit: str) -> None:
    text = _distinct_runs(25_000) if unit == "distinct" else unit * (200_000 // len(unit))
    with within_seconds(5):
        runs.cut(text)
        second_reading(text, runs)


def test_the_shipped_model_weighs_harm_words_not_the_commonest() -> None:
    model = EmbeddedClassifier().model
    harm = runs_for(model)._harm
    assert {"kill", "die", "idiot", "stupid", "suicide"} <= harm
    assert not {"would", "your", "here", "the"} & harm  # among the 500 commonest
    assert not {"free", "subscribe"} & harm  # spam's words


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("you are a rnoron", "you are a moron"),
        ("vvorthless icliot, go clie", "worthless idiot, go die"),
        ("RNORON!", "moron!"),
        ("clurnb vvhore", "dumb whore"),  # two pairs in one word
        # Words as written, and names that read as no word: as written.
        ("turn modern clown claim uncle www", None),
        ("Arnold Bjarne Vernon Cornwall", None),
        # Beside a digit, an underscore or a letter of another script: tags and names.
        ("rnoron1 x_rnoron кrnoron", None),
    ],
)
def test_look_alike_letter_pairs_are_read_as_their_letter(
    runs: Runs, text: str, read: str | None
) -> None:
    assert runs.alike(text) == (text if read is None else read)


def test_look_alikes_in_addresses_are_left_and_the_rest_read(runs: Runs) -> None:
    text = "@rnoron https://example.org/vvhore"
    assert second_reading(text, runs) is None
    assert second_reading(f"{text} you rnoron", runs) == f"{text} you moron"


def test_a_text_reads_a_bounded_number_of_look_alike_words(runs: Runs) -> None:
    # Every word of wordninja's list written with "rn" for its "m": far more than the bound.
    words = [w for w in _KNOWN if w.isalpha() and "m" in w and not {"r", "v", "c"} & set(w)]
    kept = [(w.replace("m", "rn"), w) for w in words[:5_000] if w.replace("m", "rn") not in _KNOWN]
    read = runs.alike(" ".join(a for a, _ in kept)).split()
    assert sum(r != a for r, (a, _) in zip(read, kept, strict=True)) == MOST_ALIKE
    assert read[:MOST_ALIKE] == [w for _, w in kept[:MOST_ALIKE]]


@pytest.mark.parametrize("unit", ["rn", "rnoron ", "vvv", "clrnvv ", "ab rn cl vv "])
def test_a_hostile_post_of_look_alikes_costs_its_length(runs: Runs, unit: str) -> None:
    text = unit * (200_000 // len(unit))
    with within_seconds(5):
        runs.alike(text)
        second_reading(text, runs)


def test_a_hostile_post_of_distinct_look_alike_words_costs_its_length(runs: Runs) -> None:
    letters = "abcdefghijklmnopqrstuvwxyz"
    # "rnaaa rnaab ...": 17,576 words that hold a pair and are no word, no two alike.
    text = " ".join(f"rn{a}{b}{c}" for a in letters for b in letters for c in letters)
    with within_seconds(5):
        runs.alike(text)
        second_reading(text, runs)


@pytest.mark.parametrize(("pair", "letter"), ALIKE)
def test_every_look_alike_pair_is_read(runs: Runs, pair: str, letter: str) -> None:
    # The reader's quick look for pairs is written out: a pair added to ALIKE must be read too.
    word = next(
        w
        for w in _KNOWN
        if len(w) > 4
        and w.isalpha()
        and w.count(letter) == 1
        and w.replace(letter, pair) not in _KNOWN
    )
    assert runs.alike(f"you {word.replace(letter, pair)}") == f"you {word}"
