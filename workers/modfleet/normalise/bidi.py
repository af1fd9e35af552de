"""A text in the order a display shows it, where bidi overrides reorder it: what a reader of a
post reads, which the model must read too."""

from __future__ import annotations

import re

from modfleet.normalise import chars

# Runs of anything but controls; the controls that close with nothing between them.
_NOT_EXPLICIT = re.compile(f"[^{chars.EXPLICIT}]+")
_EMPTY_EMBEDDING = re.compile(
    "[\u202a\u202b\u202d\u202e]\u202c|[\u2066-\u2068][\u202a-\u202e]*\u2069"
)
# What a display takes in one step: controls and whatever folds to nothing between them, a
# segment's end (bidi class S), or paragraph ends and whatever folds to nothing between them.
_EXPLICIT, _ENDS, _DROPPED = chars.EXPLICIT, chars.PARAGRAPH_ENDS, chars.DROPPED
_BIDI_MARKS = re.compile(
    f"([{_EXPLICIT}](?:(?:(?![{_ENDS}])[{_DROPPED}])*[{_EXPLICIT}])*"
    f"|[\t\x0b\x1f]+"
    f"|[{_ENDS}](?:[{_DROPPED}]*[{_ENDS}])*)"
)


# Explicit controls past which a long text is read as one window (``costly``): no real post holds
# this many, and reading them costs a step each, in Python (about 0.3 s for this many).
MAX_CONTROLS = 100_000


def costly(text: str) -> bool:
    """Whether ``displayed`` would take more steps on ``text`` than ``MAX_CONTROLS``."""
    if "\u202e" not in text and "\u202d" not in text:
        return False
    return sum(text.count(control) for control in chars.EXPLICIT) > MAX_CONTROLS


def displayed(text: str) -> str:
    """``text`` in the order a display shows it. An override (LRO, RLO) forces a direction on
    the text after it, up to where the Unicode Bidi Algorithm's embedding stack pops it, and a
    display reverses runs by rule L2: "\u202etoidi" reads as "idiot", and so does
    "\u202etoi\u202a\u202cdi" (the nested embedding is popped, the override goes on).

    Not a library's reordering (python-bidi's): it reverses Hebrew and Arabic too, which the
    model reads in logical order, as their readers do. Only rules X1-X9, L1 and L2 are kept:
    text no override covers reads in logical order, placed as left-to-right text (rules W1-N2
    for neutrals, which can place a word at an embedding's or an isolate's edge elsewhere,
    are not followed; they never reverse a word). A step per control or piece of text: a
    megabyte of controls is read in linear time."""
    if ("\u202e" not in text and "\u202d" not in text) or chars.BLANK.fullmatch(text):
        return text
    shown: list[str] = []
    line, stack = _Line(), Embeddings()
    pieces = iter(_BIDI_MARKS.split(text))
    line.add(0, "", next(pieces))
    for mark, piece in zip(pieces, pieces, strict=True):  # text follows each mark
        if mark[0] in chars.PARAGRAPH_ENDS:
            line.emit(shown)
            shown.append("\n")
            line, stack = _Line(), Embeddings()
        elif (blank := stack.read(mark)) is not None:
            line.blank(*blank)
        if piece:
            line.add(*stack.top, piece)
    line.emit(shown)
    return "".join(shown)


# LRE RLE LRO RLO LRI RLI FSI: whether the level they begin is odd, their override, isolate.
_OPENERS = {
    "\u202a": (False, "", False),
    "\u202b": (True, "", False),
    "\u202d": (False, "L", False),
    "\u202e": (True, "R", False),
    "\u2066": (False, "", True),
    "\u2067": (True, "", True),
    "\u2068": (False, "", True),
}


class Embeddings:
    """A paragraph's explicit embedding stack (rules X1-X8), at most 125 levels deep. FSI is
    taken as LRI: the direction of an isolate's level changes no override's reading."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str, bool]] = [(0, "", False)]  # level, override, isolate
        self.overflow_isolates = 0
        self.overflow_embeddings = 0
        self.isolates = 0

    @property
    def top(self) -> tuple[int, str]:
        """The level of the text at this point for rule L2 (even where no override covers it:
        read as left-to-right text), and the override on it."""
        level, override, _ = self.stack[-1]
        return (level if override else (level + 1) & ~1), override

    def read(self, mark: str) -> tuple[int, bool] | None:
        """Moves past the controls in ``mark``; gives the lowest level of the rest of it (which
        folds to nothing; an isolate's ends stay in the text, outside it; a segment's end is at
        level 0, rule L1), and whether a space is at it. The controls are taken inline: a post
        can hold a million, and a call each would double the time."""
        stack, blank = self.stack, None
        for char in mark:
            if (opener := _OPENERS.get(char)) is not None:
                if opener[2]:
                    blank = _lower(blank, self.top[0], False)
                level = stack[-1][0]
                level = (level + 1) | 1 if opener[0] else (level + 2) & ~1
                if level > 125 or self.overflow_isolates or self.overflow_embeddings:
                    self._overflow(opener[2])
                else:
                    stack.append((level, *opener[1:]))
                    self.isolates += opener[2]
            elif char == "\u202c":
                if self.overflow_embeddings and not self.overflow_isolates:
                    self.overflow_embeddings -= 1
                elif len(stack) > 1 and not stack[-1][2] and not self.overflow_isolates:
                    stack.pop()
            elif char == "\u2069":
                self._end_isolate()
                blank = _lower(blank, self.top[0], False)
            else:
                blank = _lower(blank, 0 if char in "\t\x0b\x1f" else self.top[0], char.isspace())
        return blank

    def _overflow(self, isolate: bool) -> None:
        if isolate:
            self.overflow_isolates += 1
        elif not self.overflow_isolates:
            self.overflow_embeddings += 1

    def _end_isolate(self) -> None:
        if self.overflow_isolates:
            self.overflow_isolates -= 1
        elif self.isolates:
            self.overflow_embeddings = 0
            while not self.stack[-1][2]:
                self.stack.pop()
            self.stack.pop()
            self.isolates -= 1


def _lower(blank: tuple[int, bool] | None, level: int, space: bool) -> tuple[int, bool]:
    """The lowest level of text that folds to nothing, and whether a space is at it."""
    if blank is None or level < blank[0]:
        return level, space
    return blank[0], blank[1] or (space and level == blank[0])


class _Run:
    """A maximal run of text at one level or above, which rule L2 reverses; ``flipped`` if it
    stands an odd number of levels above the run holding it (each level reverses it once)."""

    __slots__ = ("flipped", "parts")

    def __init__(self, levels: int) -> None:
        self.flipped = levels % 2 == 1
        self.parts: list[tuple[str, str] | _Run] = []  # text as written and its override

    def emit(self, out: list[str], flipped: bool = False) -> None:
        flipped ^= self.flipped
        for part in reversed(self.parts) if flipped else self.parts:
            if isinstance(part, _Run):
                part.emit(out, flipped)
            else:
                out.append(_oriented(*part))


class _Line:
    """A paragraph's text in nested runs: rule L2's reversals as a tree, built in one pass
    (reversing at each level from the highest down costs the text's length a level). Text at
    one level under one override is one piece; text that folds to nothing, however many
    pieces in a row, one at the lowest of their levels, which alone decides how the text
    either side is ordered (a space if one at that level holds one, as it is shown there)."""

    def __init__(self) -> None:
        self.open: list[tuple[int, _Run]] = [(0, _Run(0))]
        self.level, self.override = 0, ""
        self.pending: list[str] = []
        self.blank_at: tuple[int, bool] | None = None

    def add(self, level: int, override: str, text: str) -> None:
        if text.isspace() or chars.BLANK.fullmatch(text):
            self.blank(level, chars.SPACE.search(text) is not None)
            return
        self._place_blank()
        if level != self.level or override != self.override:
            self._place()
            self.level, self.override = level, override
        self.pending.append(text)

    def blank(self, level: int, space: bool) -> None:
        self.blank_at = _lower(self.blank_at, level, space)

    def emit(self, out: list[str]) -> None:
        self._place_blank()
        self._place()
        self.open[0][1].emit(out)

    def _place_blank(self) -> None:
        if self.blank_at is not None:
            self._place()
            self.level, self.override = self.blank_at[0], ""
            self.pending.append(" " if self.blank_at[1] else "")
            self.blank_at = None

    def _place(self) -> None:
        if not self.pending:
            return
        open_, level = self.open, self.level
        while open_[-1][0] > level:
            inner, run = open_.pop()
            outer_level, outer = open_[-1]
            if outer_level < level:  # the run closed is part of one at ``level``
                run.flipped = (inner - level) % 2 == 1
                outer.parts[-1] = wrapper = _Run(level - outer_level)
                wrapper.parts.append(run)
                open_.append((level, wrapper))
        outer_level, outer = open_[-1]
        if outer_level < level:
            outer.parts.append(run := _Run(level - outer_level))
            open_.append((level, run))
        open_[-1][1].parts.append(("".join(self.pending), self.override))
        self.pending = []


def _oriented(text: str, override: str) -> str:
    """``text`` as a reader reads it under ``override``: reversed under a right-to-left one,
    each letter with its marks, but its Hebrew or Arabic as without the override, in logical
    order (their readers read them right to left); under a left-to-right one, only those
    reversed."""
    if override == "R":
        return _reversed(text)
    if override == "L" and chars.scripts().rtl.search(text):
        # Reversed twice over, the rest goes back to its order, and the runs stay reversed.
        return _reversed("".join(reversed(chars.scripts().clusters.findall(text))))
    return text


def _reversed(text: str) -> str:
    if text.isascii():
        return text[::-1]
    return "".join(reversed(chars.scripts().units.findall(text)))


def left_out(middle: str) -> str:
    """What stands for the part of a long text left out: a space (its spaces may have been all
    that parted two words), then what a display carries over it: a paragraph's end if it holds
    one, and its controls since its last, less those that close with nothing between (in a
    few passes only: nested deeper, they are read a control a step)."""
    last = max(middle.rfind(end) for end in chars.PARAGRAPH_ENDS)
    controls = _NOT_EXPLICIT.sub("", middle[last + 1 :])
    for _ in range(4):
        controls, removed = _EMPTY_EMBEDDING.subn("", controls)
        if not removed:
            break
    return (" \n" if last >= 0 else " ") + controls
