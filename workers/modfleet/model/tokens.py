"""The word view's n-grams for a whole batch, as UTF-8 bytes laid end to end, in numpy.

Tokens are those of the regex ``(?u)\\b\\w+\\b`` that the shipped weights were trained with
(scikit-learn's word analyzer): maximal runs of word characters, which are looked up per code
point in a table that ``re`` itself filled, so ``\\w`` means exactly what it means to ``re``. An
n-gram is n tokens of one text joined by single spaces. Nothing here walks the text per
character or per token in Python: the regex pass over each text and the string join of each
n-gram, most of the word view's time before, are array operations over the batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

_WORD = re.compile(r"\w")
IN_ARRAYS = 256  # from this length on (a batch's texts joined), views are made in numpy

Ints = np.ndarray[Any, np.dtype[np.int64]]
Bytes = np.ndarray[Any, np.dtype[np.uint8]]


def bmp_table(pattern: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """For every basic-plane code point, whether ``re`` matches it with ``pattern`` (one
    character's class, such as ``\\w``), asked of ``re`` itself so that the arrays agree with it."""
    every = "".join(map(chr, range(0x10000)))  # lone surrogates included
    table = np.zeros(0x10000, dtype=np.bool_)
    for run in re.finditer(f"(?:{pattern})+", every):
        table[run.start() : run.end()] = True
    return table


_BMP_WORD = bmp_table(r"\w")


def in_class(
    points: np.ndarray[Any, Any], table: np.ndarray[Any, np.dtype[np.bool_]], one: re.Pattern[str]
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per code point, whether it is in the class that ``table`` holds for the basic plane and
    ``one`` (a pattern matching one such character) defines for the others."""
    if not len(points) or int(points.max()) < 0x10000:
        basic: np.ndarray[Any, np.dtype[np.bool_]] = table[points]
        return basic
    flags = np.zeros(len(points), dtype=np.bool_)
    bmp = points < 0x10000
    flags[bmp] = table[points[bmp]]
    # Astral code points: few distinct ones in a batch, asked of re itself.
    astral = np.flatnonzero(~bmp)
    distinct, where = np.unique(points[astral], return_inverse=True)
    answers = [one.match(chr(int(p))) is not None for p in distinct]
    flags[astral] = np.array(answers, dtype=np.bool_)[where]
    return flags


def is_word(points: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per code point, whether ``re`` reads it as ``\\w``."""
    return in_class(points, _BMP_WORD, _WORD)


def code_points(text: str) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """The text's code points; a lone surrogate (valid JSON, invalid UTF-8) is one too."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def text_of(points: np.ndarray[Any, np.dtype[np.uint32]]) -> str:
    """The text of ``code_points``' output, or of a selection of it."""
    raw: bytes = points.tobytes()
    return raw.decode("utf-32-le", "surrogatepass")


def word_grams(views: Sequence[str], ngrams: tuple[int, int]) -> tuple[Bytes, Ints, Ints]:
    """(the n-grams' UTF-8 bytes end to end, each n-gram's length in bytes, its text's row)."""
    lengths = np.fromiter(map(len, views), dtype=np.int64, count=len(views))
    joined = "".join(views)
    points = code_points(joined)
    starts, ends, rows = _token_spans(points, lengths)
    # Byte offsets of every code point in the batch's UTF-8 (surrogates take 3, as "surrogate-
    # pass" writes them; they are never inside a token, so their bytes are never read).
    utf8 = np.frombuffer(joined.encode("utf-8", "surrogatepass") + b" ", dtype=np.uint8)
    if len(utf8) - 1 != len(points):
        width = 1 + (points >= 0x80).astype(np.int64) + (points >= 0x800) + (points >= 0x10000)
        offset = np.zeros(len(points) + 1, dtype=np.int64)
        np.cumsum(width, out=offset[1:])
        starts, ends = offset[starts], offset[ends]
    return _assemble(utf8, starts, ends, rows, ngrams)


def _token_spans(points: np.ndarray[Any, Any], lengths: Ints) -> tuple[Ints, Ints, Ints]:
    """Each token's first and one-past-last code point, and its text's row."""
    word = is_word(points)
    text_ends = np.cumsum(lengths)
    text_start = np.zeros(len(points) + 1, dtype=np.bool_)  # a token never spans two texts
    text_start[text_ends[:-1]] = True
    before = np.concatenate(([False], word[:-1])) & ~text_start[:-1]
    after = np.concatenate((word[1:], [False])) & ~text_start[1:]
    starts = np.flatnonzero(word & ~before)
    ends = np.flatnonzero(word & ~after) + 1
    rows = np.searchsorted(text_ends, starts, side="right")
    return starts, ends, rows


def _assemble(
    utf8: Bytes, starts: Ints, ends: Ints, rows: Ints, ngrams: tuple[int, int]
) -> tuple[Bytes, Ints, Ints]:
    """Gather each n-gram's bytes: its tokens' byte ranges with a space (the buffer's last
    byte) between them. Returns (bytes, lengths, rows)."""
    space = len(utf8) - 1
    piece_starts: list[Ints] = []
    piece_ends: list[Ints] = []
    gram_lengths: list[Ints] = []
    gram_rows: list[Ints] = []
    count = len(starts)
    for n in range(ngrams[0], ngrams[1] + 1):
        m = max(count - n + 1, 0)
        first = np.arange(m)
        same = rows[first + n - 1] == rows[first] if n > 1 else np.ones(m, dtype=np.bool_)
        first = first[same]
        # 2n - 1 pieces a gram: token, space, token, ... interleaved per gram.
        s = np.empty((len(first), 2 * n - 1), dtype=np.int64)
        e = np.empty_like(s)
        for k in range(n):
            s[:, 2 * k] = starts[first + k]
            e[:, 2 * k] = ends[first + k]
        s[:, 1::2] = space
        e[:, 1::2] = space + 1
        piece_starts.append(s.ravel())
        piece_ends.append(e.ravel())
        gram_lengths.append((e - s).sum(axis=1))
        gram_rows.append(rows[first])
    if not piece_starts:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint8), empty, empty
    ps, pe = np.concatenate(piece_starts), np.concatenate(piece_ends)
    sizes = pe - ps
    # The ragged gather: every piece's byte indices in one arange, shifted piece by piece.
    total = int(sizes.sum())
    shift = np.repeat(ps - (np.cumsum(sizes) - sizes), sizes)
    data = utf8[np.arange(total, dtype=np.int64) + shift]
    return data, np.concatenate(gram_lengths), np.concatenate(gram_rows)
