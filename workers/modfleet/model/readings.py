"""A text's second reading: what a reader sees in it that the model's word view does not.

- Marks inside a word, read through: markdown emphasis (``k*ill*``, ``f**u**ck``,
  ``w~~orth~~less``) and pictographs between letters (``k🔪ill``). A platform that renders
  markdown shows the word whole, and a reader reads past the marks and the emoji.
- Punctuation between two letters of a word, read through: ``k,ill``, ``your'self``,
  ``k.ill``, ``idio't``, as a reader skips a stray mark. Not an apostrophe before a
  contraction's ending (``we'll``; ``'t`` after ``n`` only: ``don't``), a full stop between
  single letters (``e.g.``), nor anything in a word that holds ``/`` or ``@`` (addresses and
  handles).
- A hashtag's words run together, told apart by their capitals: ``#GoDieInAFire``.
- Words run together in small letters, found by a word segmenter where the run holds a word
  the model weighs toward a harm and a word that glues a phrase: ``killyourself``
  (``model/runs.py``), and words written with letter pairs that look like one letter
  (``rnoron``, ``vvorthless``, ``clie``), by the segmenter's word list.
- The other letter of an ambiguous l33t character: ``1`` and ``|`` stand for ``l`` or ``i``,
  and the word view reads ``1`` as ``i`` and ``|`` as ``l``, so ``ki11`` was ``kiii``. Taken
  only in a word of two letters or more and no other digit, not an ordinal (``1st``), so that
  tags and names (``#z1``, ``user123``, ``covid19``) are not read twice.

A text that has a second reading is scored as written and so read: the worse of the two
counts. Both, because a second reading cannot tell a word split by a mark (``f**u**cking``)
from two words glued by one (``kill*a*yourself``), nor ``ki11`` from ``b1tch``: read alone, it
would hide what the first reading saw.

An emphasis run with no closing pair (``f***ing``, ``sh*t``) is censoring, emphasis around
whole words hides nothing, and an emoji between words is punctuation: none is read again.
"""

from __future__ import annotations

import re

from modfleet.model.runs import RULES as RUN_RULES
from modfleet.model.runs import Runs

_PAIR = re.compile(r"(\*\*|\*|~~)([^\W_]+)\1")
# Emoji and other pictographs (with their variation selector and joiner) between two letters.
_PICTURES = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d"
_PICTURED = re.compile(f"(?<=[^\\W\\d_])[{_PICTURES}]+(?=[^\\W\\d_])")
_HAS_PICTURE = re.compile(f"[{_PICTURES}]")
# A whole word of Latin letters, 1 and |, holding a 1 or | and two letters or more, not an
# ordinal. Tried at word starts only (| is in the lookbehind): from inside a word, a run of |
# would be scanned again from each of its characters. In C it is fast on a post of thousands of
# such words, but it is tried at every word start of every post that holds a 1 (3 us a post):
# a post with a few 1s and |s is read by the loop below instead, from each of them outwards.
_AMBIGUOUS_WORD = re.compile(
    r"(?<![\w|])(?!1+(?:st|nd|rd|th)(?![\w|]))(?=[a-z]*[1|])(?=(?:[1|]*[a-z]){2})"
    r"[a-z1|]+(?![\w|])",
    re.IGNORECASE,
)


def _inside(marks: str, letter: str, apostrophe: str) -> re.Pattern[str]:
    """A run of ``marks`` between two ``letter``s, not an ``apostrophe`` before a
    contraction's ending."""
    return re.compile(
        f"[{marks}](?<={letter}.)[{marks}]*(?={letter})"
        f"(?<!{apostrophe}(?=(?:s|re|ve|ll|d|m)(?!{letter})))"
        # 't ends a contraction only after n (don't, can't, ain't): idio't is a word split.
        f"(?<!n{apostrophe}(?=t(?!{letter})))",
        re.IGNORECASE,
    )


# Punctuation between two letters of a word (``k,ill``, ``your'self``), read through. Not an
# apostrophe before a contraction's ending (``don't``, ``we'll``), nor a full stop between
# single letters (``e.g.``, ``U.S.``; three or more the word view joins already): most posts
# would be scored twice for nothing. The pattern starts with the run's first mark, so that it is
# scanned for in C; the letter before it is looked back to from there (a lookbehind first is
# tried at every character: twice the time).
_INSIDE = _inside(",;:.'\u2018\u2019-", r"[^\W\d_]", r"['\u2019]")
# The same on an ASCII text, where a letter is [A-Za-z]: twice as fast as the Unicode classes.
_INSIDE_ASCII = _inside(",;:.'-", "[A-Za-z]", "'")
_SINGLE = re.compile(r"[^\W\d_](?![^\W\d_])")
# A web address, an e-mail address or a handle (``t.co/x``, ``a.b@c.org``, ``@jo.doe``) is
# not read again: it holds no reader's words. Found from its / or @ outwards, to the spaces.
_ADDRESS_MARK = re.compile(r"[/@]")
_NOT_SPACE = re.compile(r"\S*")
# A hashtag's words run together, each with a capital (``#GoDieInAFire``). Not one that starts
# small (``#iPad``), nor names elsewhere (``YouTube``, ``McDonald``): scored twice for nothing.
# The pattern starts with ``#``, so a post without one costs a scan for it alone.
_HASHTAG_WORDS = re.compile(r"#[A-Z][A-Za-z]*?[a-z][A-Z][A-Za-z]*")
_CAMEL_CUT = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_FEW = 8  # 1s and |s in a text, up to which the loop reads it
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1|")
_WORD_RIGHT = re.compile(r"[A-Za-z1|]*")
_ORDINAL = re.compile(r"1+(?:st|nd|rd|th)", re.IGNORECASE)
_OTHER_LETTER = str.maketrans("1|", "li")
# In the model's id: a verdict cached under other rules is not reused.
RULES = (
    _PAIR.pattern,
    _PICTURED.pattern,
    _AMBIGUOUS_WORD.pattern,
    _INSIDE.pattern,
    _INSIDE_ASCII.pattern,
    _SINGLE.pattern,
    _ADDRESS_MARK.pattern,
    _HASHTAG_WORDS.pattern,
    _CAMEL_CUT.pattern,
    RUN_RULES,
)


def second_reading(text: str, runs: Runs | None = None) -> str | None:
    """``text`` as a reader may see it where the word view does not, or None where the two
    are the same; ``runs`` cuts words run together in small letters."""
    read = text
    if "*" in read or "~" in read:
        read = _PAIR.sub(_unwrapped, read)
    if not read.isascii() and _HAS_PICTURE.search(read):
        read = _PICTURED.sub("", read)
    read = _outside_addresses(read, runs)
    if "1" in read or "|" in read:
        if read.count("1") + read.count("|") <= _FEW:
            read = _other_letters(read)
        else:
            read = _AMBIGUOUS_WORD.sub(_translated, read)
    return read if read != text else None


def _unwrapped(match: re.Match[str]) -> str:
    text, (start, end) = match.string, match.span()
    if text[start - 1 : start].isalpha() or text[end : end + 1].isalpha():
        return match.group(2)
    return match.group(0)


def _joined(match: re.Match[str]) -> str:
    text, (start, end), run = match.string, match.span(), match.group(0)
    if run == "." and _SINGLE.match(text, end) and not text[start - 2 : start - 1].isalpha():
        return run
    return ""


def _outside_addresses(text: str, runs: Runs | None) -> str:
    """:func:`_read_words` of the text between the web addresses, e-mail addresses and
    handles."""
    found = _ADDRESS_MARK.search(text)
    if found is None:
        return _read_words(text, runs)
    parts: list[str] = []
    copied = 0
    while found is not None:
        start = found.start()
        while start > copied and not text[start - 1].isspace():
            start -= 1
        word = _NOT_SPACE.match(text, found.end())
        end = word.end() if word is not None else found.end()
        parts += (_read_words(text[copied:start], runs), text[start:end])
        copied = end
        found = _ADDRESS_MARK.search(text, end)
    return "".join(parts) + _read_words(text[copied:], runs)


def _read_words(text: str, runs: Runs | None) -> str:
    """Punctuation inside words read through, a hashtag's words cut apart, look-alike letter
    pairs read as their letter, words run together cut apart."""
    read = (_INSIDE_ASCII if text.isascii() else _INSIDE).sub(_joined, text)
    if "#" in read:
        read = _HASHTAG_WORDS.sub(_cut, read)
    # After the punctuation: ``kill,yourself`` read through is a run.
    return runs.read(read) if runs is not None else read


def _cut(match: re.Match[str]) -> str:
    return _CAMEL_CUT.sub(" ", match.group(0))


def _translated(match: re.Match[str]) -> str:
    return match.group(0).translate(_OTHER_LETTER)


def _other_letters(text: str) -> str:
    """``_AMBIGUOUS_WORD.sub(_translated, text)``, each word found from its 1 or | outwards."""
    parts: list[str] = []
    copied = 0
    at = _next_ambiguous(text, 0)
    while at != -1:
        start = at
        while start > copied and text[start - 1] in _WORD_CHARS:
            start -= 1
        right = _WORD_RIGHT.match(text, at)  # always matches: the 1 or | at least
        end = right.end() if right is not None else at + 1
        word = text[start:end]
        bounded = not _is_word_char(text, start - 1) and not _is_word_char(text, end)
        if bounded and sum(c.isalpha() for c in word) >= 2 and not _ORDINAL.fullmatch(word):
            parts += (text[copied:start], word.translate(_OTHER_LETTER))
            copied = end
        at = _next_ambiguous(text, max(end, at + 1))
    return "".join(parts) + text[copied:] if parts else text


def _next_ambiguous(text: str, start: int) -> int:
    one, bar = text.find("1", start), text.find("|", start)
    return bar if one == -1 else one if bar == -1 else min(one, bar)


def _is_word_char(text: str, at: int) -> bool:
    if at < 0 or at >= len(text):
        return False
    char = text[at]
    return char.isalnum() or char == "_" or char == "|"
