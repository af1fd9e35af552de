"""The word view of a folded text: l33t words read as letters, spaced-out letters joined.

Two patterns define it. For a batch's texts joined (``IN_ARRAYS`` characters and more) the
same string is made with arrays over the code points, since the patterns' scans were the
featuriser's largest remaining part (about 90k instructions a post): a word holding a l33t
character is found among the whitespace-separated runs at once, and the spaced-out pattern is
tried only where five code points already have its shape, which every match starts with.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from modfleet.model.tokens import IN_ARRAYS, bmp_table, code_points, in_class, is_word, text_of

# Digits and symbols standing in for letters ("l33t"). The word view reads them so only inside
# words that also have letters, so that "$5" and "3 pm" keep their meaning there.
_LEET = {
    "0": "o", "1": "i", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b",
    "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "€": "e", "£": "l", "+": "t", "(": "c",
}  # fmt: skip
LEET_TABLE = str.maketrans(_LEET)
_TRIGGERS = "013457@$!|"  # a word holding one of these is read as l33t (if it has a letter)
# A word mixing letters with digits or symbols that stand for letters: "1d10t", "b!tch", "$hit".
# Tried at word starts only, and the run before its first such character cannot hold one: a
# post's one long word is read once. ``[^\s]*[013457@$!|][^\s]*`` matches the same words but
# is tried again at every character of a word without one, quadratic in its length: 20,000
# letters took two seconds, holding the event loop.
_LEET_WORD = re.compile(r"(?<!\S)[^\s013457@$!|]*[013457@$!|]\S*")
_LETTER = re.compile(r"[a-z]")
# Three or more single letters apart: "i d i o t", "s.t.u.p.i.d".
_SPACED = re.compile(r"(?<!\w)(?:\w[ .*_-]){2,}\w(?!\w)")
_SEPARATOR = re.compile(r"[ .*_-]")

# What the view's reading depends on: named in the embedded model's id (``READING_ID``), so
# that a verdict cached under other rules is not reused for a text they read otherwise.
RULES = (_LEET_WORD.pattern, _SPACED.pattern, sorted(_LEET.items()))

Points = np.ndarray[Any, np.dtype[np.uint32]]
Flags = np.ndarray[Any, np.dtype[np.bool_]]


def _table(chars: str) -> Flags:
    table = np.zeros(0x10001, dtype=np.bool_)  # the last entry stands for every astral point
    table[[ord(c) for c in chars]] = True
    return table


def _leet_to() -> Points:
    # Indexed by code point, the last entry standing for every astral one (kept as 0x10000).
    to = np.arange(0x10001, dtype=np.uint32)
    for digit, letter in _LEET.items():
        to[ord(digit)] = ord(letter)
    return to


_SPACE_BMP, _SPACE = bmp_table(r"\s"), re.compile(r"\s")
_IS_TRIGGER = _table(_TRIGGERS)
_IS_LETTER = _table("abcdefghijklmnopqrstuvwxyz")
_IS_LEET = _table("".join(_LEET))
LEET_TO = _leet_to()
_IS_SEPARATOR = _table(" .*_-")


def words(folded: str) -> str:
    """The word view: l33t words read as letters, spaced-out letters joined."""
    if len(folded) < IN_ARRAYS:
        text = _LEET_WORD.sub(_read_leet, folded)
        return _SPACED.sub(_joined, text)
    points = code_points(folded)
    read = _read_leet_words(points)
    if read is None:
        return _join_spaced(folded, points)
    return _join_spaced(text_of(read), read)


def _read_leet(match: re.Match[str]) -> str:
    word = match.group(0)
    return word.translate(LEET_TABLE) if _LETTER.search(word) else word


def _joined(match: re.Match[str]) -> str:
    return _SEPARATOR.sub("", match.group(0))


def _read_leet_words(points: Points) -> Points | None:
    """``_LEET_WORD.sub(_read_leet, ...)`` in arrays; None when nothing changes. The pattern's
    matches are the whitespace-separated runs that hold a trigger."""
    clipped = np.minimum(points, 0x10000)
    trigger = _IS_TRIGGER[clipped]
    if not trigger.any():
        return None
    space = in_class(points, _SPACE_BMP, _SPACE)
    run = np.cumsum(space)  # a run's number: the spaces before it (two runs have one between)
    has_trigger = np.zeros(int(run[-1]) + 1, dtype=np.bool_)
    has_trigger[run[trigger]] = True
    has_letter = np.zeros_like(has_trigger)
    has_letter[run[_IS_LETTER[clipped]]] = True
    change = np.flatnonzero((has_trigger & has_letter)[run] & _IS_LEET[clipped])
    if not len(change):
        return None
    read = points.copy()
    read[change] = LEET_TO[points[change]]
    return read


def _join_spaced(text: str, p: Points) -> str:
    """``_SPACED.sub(_joined, text)`` (``p`` its code points), the pattern tried only where a
    match can start."""
    word, separator = is_word(p), _IS_SEPARATOR[np.minimum(p, 0x10000)]
    # \w, separator, \w, separator, \w from here, and no \w before: a match's least shape.
    shape = word[:-4] & separator[1:-3] & word[2:-2] & separator[3:-1] & word[4:]
    shape[1:] &= ~word[:-5]
    pieces: list[str] = []
    done = 0
    for start in np.flatnonzero(shape).tolist():
        if start < done:  # inside the last match, as the pattern's own scan would skip it
            continue
        match = _SPACED.match(text, start)  # the lookbehind sees the text before start
        if match is None:
            continue
        pieces += (text[done:start], _joined(match))
        done = match.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)
