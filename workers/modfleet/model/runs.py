"""Words run together in small letters (``killyourself``, ``#godieinafire``), cut apart for the
second reading, as a reader finds the words in them.

A hashtag's words with a capital each are cut at their capitals (``model/readings.py``); these
have none to cut at. wordninja finds the likeliest words in a run from English word
frequencies. A run is cut only where it can matter and where it is cheap to:

- it is not itself a word wordninja knows (``understanding``, ``youtube``): most posts have
  none such, and their cost is one scan of the text in C;
- it holds one of the words the model weighs toward a harm (:func:`harm_words`: ``kill``,
  ``die``, ``idiot``), so that names and typos (``youngkin``, ``rediculous``) are not read
  twice for nothing;
- and it is cut into words of which one is such a word and another a word that joins a
  phrase (scikit-learn's English stop words: ``you``, ``in``, ``yourself``): a phrase run
  together, not a compound (``dickhead`` read as ``dick head`` is a sexual word in an insult).

The same word list reads words written with letter pairs that look like one letter (Unicode's
confusables: ``rn`` for ``m``, ``vv`` for ``w``, ``cl`` for ``d``): ``rnoron``, ``vvorthless``,
``clie``. A word is so read where it is no word wordninja knows and, so read, is one
(``turn``, ``clown`` and names such as ``Arnold`` stay as written).

wordninja's cost grows with the square of a run's length (a run of 40 random letters took 0.7
ms): only runs of at most :data:`LONGEST_RUN` letters are split, :data:`MOST_LETTERS` letters
in all in one text, so that a hostile post costs at most about a millisecond more than its
model reading.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # type: ignore[import-untyped]

from modfleet.patterns import WHOLE, one_of, whole_words

if TYPE_CHECKING:  # features imports the readings, which import this
    from modfleet.model.artifact import EmbeddedModel
    from modfleet.model.features import Featuriser

SHORTEST_RUN = 6  # letters; shorter runs are words or two short ones (``ofit``)
LONGEST_RUN = 24  # letters ("kissmyassyoucluelessjerk")
MOST_LETTERS = 64  # split in one text
SHORTEST_WORD = 3  # letters of a harm word looked for inside a run
LONGEST_WORD = 12
COMMON_WORDS = 30_000  # harm words are looked for among wordninja's most frequent words
# but not the most frequent of all: they weigh for the company they keep (``would``, ``your``,
# ``here``), and every other run holds one.
MOST_COMMON = 500
HARM_WEIGHT = 2.0  # a word's weight in the model's word view, toward a category
NOT_HARM = frozenset({"spam"})  # categories whose words (``com``, ``free``) are no harm
GLUE: frozenset[str] = frozenset(ENGLISH_STOP_WORDS)  # a phrase's words, not a compound's

_LOWER_RUN = re.compile(f"[a-z]{{{SHORTEST_RUN}}}[a-z]*")
ALIKE = (("rn", "m"), ("vv", "w"), ("cl", "d"))  # letter pairs and the letter they look like
MOST_ALIKE = 64  # distinct words read as their look-alikes in one text
# A pair is found first, then its word around it: cheaper than a pattern of such words, which
# is tried at every letter, or than setting every word of the text against the word list.
_ALIKE_PAIR = re.compile("|".join(pair for pair, _ in ALIKE))
_LETTERS = re.compile("[a-z]*")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")

# In the reading's id (``features.READING_ID``): a verdict cached under other rules or another
# word list is not reused.
RULES = (
    _LOWER_RUN.pattern,
    WHOLE,  # a run is cut with no letter, digit or _ either side (those are tags and names)
    LONGEST_RUN,
    SHORTEST_WORD,
    LONGEST_WORD,
    MOST_LETTERS,
    COMMON_WORDS,
    MOST_COMMON,
    HARM_WEIGHT,
    sorted(NOT_HARM),
    sorted(GLUE),
    f"wordninja-{metadata.version('wordninja')}",
    ALIKE,
    MOST_ALIKE,
    _ALIKE_PAIR.pattern,
    _LETTERS.pattern,
)


class Runs:
    """Cuts a text's runs of words into words, where a run holds a harm word, and reads
    look-alike letter pairs as their letter, by one word list."""

    def __init__(
        self, known: Mapping[str, float], harm: frozenset[str], split: Callable[[str], list[str]]
    ) -> None:
        self._known = known
        self._harm = harm
        # "Holds a harm word" in C: 1.4 us a run, against 8.6 for slicing the run every way.
        self._holds_harm = re.compile(one_of(harm)).search
        # A word run together is often posted many times over (a hashtag).
        self._split = functools.lru_cache(maxsize=4096)(split)

    def read(self, text: str) -> str:
        """:meth:`alike`, then :meth:`cut`."""
        lower = text.lower()
        read = self._alike(text, lower)
        return self._cut(read, lower if read is text else read.lower())

    def cut(self, text: str) -> str:
        """``text`` with each run that holds a harm word written as its words."""
        return self._cut(text, text.lower())

    def alike(self, text: str) -> str:
        """``text`` with each word written with look-alike letter pairs (``rnoron``) written as
        the word it reads as, where the word as written is not one and so read is."""
        return self._alike(text, text.lower())

    def _cut(self, text: str, lower: str) -> str:
        runs = _LOWER_RUN.findall(lower)
        if all(map(self._known.__contains__, runs)):
            return text  # most texts: one scan in C
        cuts: dict[str, str] = {}
        letters = 0
        for run in dict.fromkeys(runs):  # in the text's order: the same cuts in every process
            if len(run) > LONGEST_RUN or run in self._known or not self._holds_harm(run):
                continue
            letters += len(run)
            if letters > MOST_LETTERS:
                break
            words = self._split(run)
            if self._phrase(words):
                cuts[run] = " ".join(words)
        return _replaced(text, cuts)

    def _alike(self, text: str, lower: str) -> str:
        # ALIKE's pairs, written out: three scans in C, half the time of any() over ALIKE and
        # a third of _ALIKE_PAIR.search, on the most texts, which hold none.
        if "rn" not in lower and "vv" not in lower and "cl" not in lower:
            return text
        reads: dict[str, str] = {}
        for word in _alike_words(lower):  # in the text's order: the same words in every process
            if word in reads or word in self._known:  # most: morning, club, include
                continue
            read = word
            for pair, letter in ALIKE:
                read = read.replace(pair, letter)
            if read in self._known:
                reads[word] = read
                if len(reads) >= MOST_ALIKE:
                    break
        return _replaced(text, reads)

    def _phrase(self, words: Sequence[str]) -> bool:
        """A harm word and another that glues a phrase: ``kill`` + ``yourself``."""
        return any(
            word in self._harm and any(other in GLUE for other in words if other != word)
            for word in words
        )


def _alike_words(lower: str) -> Iterator[str]:
    """Each word of small letters in ``lower`` that holds a look-alike pair, in order."""
    end = 0
    found = _ALIKE_PAIR.search(lower)
    while found is not None:
        start = found.start()
        while start > end and lower[start - 1] in _LOWER:
            start -= 1
        end = _LETTERS.match(lower, found.end()).end()  # type: ignore[union-attr]
        yield lower[start:end]
        found = _ALIKE_PAIR.search(lower, end)


def _replaced(text: str, words: dict[str, str]) -> str:
    """``text`` with each of ``words`` (in any case, standing as a word of its own) replaced."""
    if not words:
        return text
    found = whole_words(words)
    return found.sub(lambda match: words.get(match.group(0).lower(), match.group(0)), text)


def runs_for(model: EmbeddedModel) -> Runs:
    """The cutter for a model: wordninja's words, and those of them the model weighs toward
    a harm."""
    import wordninja  # type: ignore[import-untyped]

    language = wordninja.DEFAULT_LANGUAGE_MODEL
    # Its only view of its words: a word's cost is the log of its rank by frequency.
    costs: dict[str, float] = language._wordcost
    common = sorted(costs, key=costs.__getitem__)[MOST_COMMON:COMMON_WORDS]
    harm = harm_words(model.featuriser, model.weights, model.categories, common)
    return Runs(costs, harm, language.split)  # its own dict: a set of the words is 8 MiB more


def harm_words(
    featuriser: Featuriser,
    weights: np.ndarray[Any, Any],
    categories: Sequence[str],
    words: Iterable[str],
) -> frozenset[str]:
    """Those of ``words`` whose own column in the model's word view weighs at least
    :data:`HARM_WEIGHT` toward a category not in :data:`NOT_HARM`."""
    looked = [w for w in words if SHORTEST_WORD <= len(w) <= LONGEST_WORD and w.isalpha()]
    by_word, _ = featuriser.blocks(looked)
    columns = [at for at, name in enumerate(categories) if name not in NOT_HARM]
    weighed = np.asarray(by_word @ weights[: by_word.shape[1]])[:, columns]
    best = weighed.max(axis=1)
    return frozenset(word for word, most in zip(looked, best, strict=True) if most >= HARM_WEIGHT)
