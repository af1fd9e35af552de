"""The characters normalising reads: what folds to nothing, what a bidi display acts on, and
which scripts read right to left (from the running Python's Unicode data)."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

# Unicode's Default_Ignorable_Code_Point: zero-width and bidi controls, variation selectors, tag
# characters, fillers. They render as nothing, so a reader sees "idiot" in "i\ufe0fd\ufe0fiot"
# while the model saw other words, and two identical-looking posts hashed apart. The ranges are
# Unicode's (tests check them against the regex library's data).
IGNORABLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
IGNORABLE_ASTRAL = "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
# Overlay marks (canonical combining class 1) strike through or slash the letter before them:
# "y\u0336o\u0336u\u0336" reads as a struck-out "you", which the model saw as other words. From
# the running Python's Unicode data (all such marks lie below U+20000).
OVERLAYS = [c for c in map(chr, range(0x20000)) if unicodedata.combining(c) == 1]
# Split at U+10000: a class holding astral characters costs re twice as much on every text,
# and astral ones are checked only in texts that hold an astral character (emoji, mostly).
INVISIBLE = re.compile("[" + IGNORABLE + "".join(c for c in OVERLAYS if c < "\U00010000") + "]")
INVISIBLE_ASTRAL = re.compile(
    "[" + IGNORABLE_ASTRAL + "".join(c for c in OVERLAYS if c >= "\U00010000") + "]"
)
ASTRAL = re.compile("[\U00010000-\U0010ffff]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Remaining C0/C1 controls (tab, newline and CR become spaces below).
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SPACE = re.compile(r"\s+")

# Characters folding removes or collapses: whitespace, and the classes of CONTROL, INVISIBLE
# and INVISIBLE_ASTRAL.
DROPPED = r"\s" + CONTROL.pattern[1:-1] + INVISIBLE.pattern[1:-1] + INVISIBLE_ASTRAL.pattern[1:-1]
BLANK = re.compile(f"[{DROPPED}]*")


@functools.lru_cache(maxsize=16)
def kept_run(count: int) -> re.Pattern[str]:
    """Matches a text's start up to and including its ``count``-th kept character."""
    return re.compile(f"(?:[{DROPPED}]*[^{DROPPED}]){{{count}}}")


# The explicit bidi formatting characters: LRE RLE PDF LRO RLO, LRI RLI FSI PDI; the overrides;
# what ends a paragraph for a display (bidi class B).
EXPLICIT = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
OVERRIDES = re.compile("[\u202d\u202e]")
PARAGRAPH_ENDS = "\n\r\x1c\x1d\x1e\x85\u2029"


class Scripts(NamedTuple):
    clusters: re.Pattern[str]  # a character and its marks
    units: re.Pattern[str]  # a run of right-to-left script, or a character and its marks
    rtl: re.Pattern[str]
    marks: re.Pattern[str]  # a run of marks


@functools.cache
def scripts() -> Scripts:
    """From the running Python's Unicode data, on first use (only overrides and long texts need
    them). Right-to-left: bidi classes R and AL. Marks: general category M, and low surrogates
    (the second half of a pair a platform sent as two escapes)."""
    rtl = _one_of(lambda c: unicodedata.bidirectional(c) in ("R", "AL"))
    marks = _one_of(lambda c: unicodedata.category(c)[0] == "M", "\udc00-\udfff")
    # A run holds what lies between two right-to-left characters, save a letter or a digit.
    run = rf"{rtl}(?:\W*{rtl})*{marks}*"
    return Scripts(
        clusters=re.compile(f".{marks}*", re.DOTALL),
        units=re.compile(f"{run}|.{marks}*", re.DOTALL),
        rtl=re.compile(rtl),
        marks=re.compile(f"{marks}*"),
    )


def _one_of(test: Callable[[str], bool], more: str = "") -> str:
    """A pattern for a character below U+20000 that passes ``test`` (or is in ``more``). re
    looks a class up in a table only if it holds no astral character, else tries its ranges one
    by one: the astral ones get a class of their own, tried on astral characters only."""
    bmp = "".join(c for c in map(chr, range(0x10000)) if test(c))
    astral = "".join(c for c in map(chr, range(0x10000, 0x20000)) if test(c))
    return f"(?:[{bmp}{more}]|(?=[\U00010000-\U0010ffff])[{astral}])"
