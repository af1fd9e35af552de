"""Text to features: two hashed views of one folded text, stateless and deterministic.

Evasion changes the surface of a word, not its letters in order, so the model reads:

- the *word view*: the text case-folded with look-alike letters folded to Latin (Cyrillic a,
  Greek omicron, accented e), l33t read as letters inside words that have letters ("1d10t", but
  not "2024"), and spaced-out letters joined ("i d i o t"), hashed as word 1- and 2-grams;
- the *squeezed view*: the same text with digits and symbols read as the letters they imitate
  ("1d10t", "@ss", "$"), then everything but letters removed, hashed as character 3- to 5-grams.
  Removing spaces makes "i d i o t", "id iot" and "youidiot" share n-grams with "idiot".

Hashing has no vocabulary to fit or ship: the artifact stores only these parameters and the
weights, and any process that builds the same :class:`Featuriser` gets the same columns. Words
are hashed with scikit-learn's MurmurHash3, as its HashingVectorizer hashes them, but in numpy
over the batch's n-grams at once (``tokens``, ``murmur``). Character n-grams (three per letter)
are hashed in numpy over the whole batch too: a polynomial hash of the code points, spread by
Fibonacci hashing; no Python string is made per n-gram.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from confusable_homoglyphs.utils import load as load_confusables

from modfleet.model import readings
from modfleet.model.murmur import murmur3_columns
from modfleet.model.tokens import IN_ARRAYS, code_points, text_of, word_grams
from modfleet.model.wordview import LEET_TO, RULES, words

# Letters from other scripts that render like Latin ones; the usual homoglyph substitutions.
# Unicode's confusables (``_look_alikes``) take precedence where they differ (U+028B only).
_CONFUSABLE = {  # Cyrillic, Greek, IPA and small-capital look-alikes
    "\u0430": "a", "\u0432": "b", "\u0441": "c", "\u0501": "d", "\u0435": "e", "\u0451": "e",
    "\u04bb": "h", "\u0456": "i", "\u0457": "i", "\u0458": "j", "\u043a": "k", "\u043c": "m",
    "\u043d": "h", "\u043e": "o", "\u0440": "p", "\u0455": "s", "\u0442": "t", "\u0443": "y",
    "\u0445": "x", "\u04af": "y", "\u051b": "q", "\u051d": "w", "\u0261": "g", "\u0131": "i",
    "\u0237": "j", "\u2113": "l", "\u03b1": "a", "\u03b2": "b", "\u03b5": "e", "\u03b7": "n",
    "\u03b9": "i", "\u03ba": "k", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03c4": "t",
    "\u03c5": "u", "\u03c7": "x", "\u03c9": "w", "\u03f2": "c", "\u0475": "v", "\u0251": "a",
    "\u028b": "v", "\u1d00": "a", "\u0299": "b", "\u1d04": "c", "\u1d05": "d", "\u1d07": "e",
    "\u0262": "g", "\u029c": "h", "\u026a": "i", "\u1d0a": "j", "\u1d0b": "k", "\u029f": "l",
    "\u1d0d": "m", "\u0274": "n", "\u1d0f": "o", "\u1d18": "p", "\u0280": "r", "\ua731": "s",
    "\u1d1b": "t", "\u1d1c": "u", "\u1d20": "v", "\u1d21": "w", "\u028f": "y", "\u1d22": "z",
}  # fmt: skip
# The letters the squeezed view keeps, as code point ranges (inclusive): Latin, Greek, Cyrillic,
# Hebrew, Arabic and the rest of the basic plane from Devanagari on.
_LETTER_RANGES = ((0x61, 0x7A), (0xDF, 0x24F), (0x370, 0x4FF), (0x590, 0x6FF), (0x900, 0xFFFF))
_REPEAT = re.compile(r"(.)\1{2,}")  # "stuuuupid" -> "stuupid": the same n-grams, bounded


def _accent_table() -> dict[str, str]:
    # Latin letters with diacritics fold to their base letter, as a reader sees through them.
    table: dict[str, str] = {}
    for code in range(0xC0, 0x250):
        base = unicodedata.normalize("NFKD", chr(code))[:1]
        if base.isascii() and base.isalpha():
            table[chr(code)] = base.lower()
    return table


def _look_alikes() -> dict[str, str]:
    """Unicode's confusables (UTS #39) that stand for one Latin letter: Armenian, Cherokee, Lisu,
    Canadian syllabics, Coptic, Latin iota and the rest of about 250 letters outside the hand
    table. Only what reaches the fold: a character casefolding changes never does, and NFKC
    (the normaliser's) has already read the mathematical and fullwidth letters."""
    table: dict[str, str] = {}
    # Read here and let go, rather than through the library's module, which keeps all 9,600
    # entries (9 MB) in every process.
    for char, alikes in load_confusables("confusables.json").items():
        if len(char) != 1 or char.isascii() or char.casefold() != char:
            continue
        if unicodedata.normalize("NFKC", char) != char:
            continue
        latin = {a["c"].lower() for a in alikes if a["c"].isascii() and a["c"].isalpha()}
        if len(latin) == 1 and len(next(iter(latin))) == 1:
            table[char] = latin.pop()
    return table


_ARRAY_FOLD_END = 0x20000  # past the astral look-alikes (Warang Citi, Osage, Deseret, ...)


def _fold_to(pairs: Mapping[str, str]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    # The same letter for letter mapping as str.translate's, as an array: translate looks each
    # character up in a dict unless the whole text is ASCII, and one emoji in a batch makes the
    # batch's joined text non-ASCII (the model's time a post rose by half).
    to = np.arange(_ARRAY_FOLD_END, dtype=np.uint32)
    for look_alike, letter in pairs.items():
        to[ord(look_alike)] = ord(letter)
    return to


_FOLD_PAIRS = _accent_table() | _CONFUSABLE | _look_alikes()
_FOLD = str.maketrans(_FOLD_PAIRS)  # for short texts
_FOLD_TO = _fold_to(_FOLD_PAIRS)  # for long ones
# Names the reading in the embedded model's id, and so in its cache keys: a verdict read
# through another fold table (another version of the confusables library, say), other word
# view rules or other rules for its second reading is not reused.
_READING = (sorted(_FOLD_PAIRS.items()), RULES, readings.RULES)
READING_ID = hashlib.sha256(repr(_READING).encode()).hexdigest()[:8]


def _letter_table(newline: bool) -> np.ndarray[Any, np.dtype[np.bool_]]:
    table = np.zeros(0x10001, dtype=np.bool_)  # the last entry stands for every astral point
    for low, high in _LETTER_RANGES:
        table[low : high + 1] = True
    table[0x0A] = newline
    return table


_LETTER_TABLE = _letter_table(newline=False)
_LETTER_OR_LINE_TABLE = _letter_table(newline=True)  # keeps the newlines between a batch's texts


def fold(text: str) -> str:
    """Case-folded text with look-alike letters replaced by the Latin letters they imitate."""
    cased = text.casefold()
    if len(cased) < IN_ARRAYS:
        return _REPEAT.sub(r"\1\1", cased.translate(_FOLD))
    p = code_points(cased)
    p = np.where(p < _ARRAY_FOLD_END, _FOLD_TO[np.minimum(p, _ARRAY_FOLD_END - 1)], p)
    # The pattern's meaning in arrays: of a run of one character (not a newline, which "."
    # does not match), the third and later are dropped.
    third = np.zeros(len(p), dtype=np.bool_)
    third[2:] = (p[2:] == p[1:-1]) & (p[1:-1] == p[:-2]) & (p[2:] != 0x0A)
    return text_of(p[~third] if third.any() else p)


def squeeze(folded: str) -> str:
    """Letters only, l33t read as letters: the view that inserted or removed spaces cannot hide."""
    return _letters_only(folded, _LETTER_TABLE)


def _letters_only(folded: str, table: np.ndarray[Any, np.dtype[np.bool_]]) -> str:
    # LEET_TO reads l33t characters as letters and every astral code point as 0x10000, which
    # no letter table keeps (as it keeps no astral letter).
    p = LEET_TO[np.minimum(code_points(folded), 0x10000)]
    return text_of(p[table[p]])


def views(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Each text's word view and squeezed view.

    No pattern above matches across a newline, so when no text holds one, the batch's texts
    joined by newlines are folded and read in one pass of each pattern and split again: the
    same views in about three quarters of the time it takes text by text (a call per text and
    step)."""
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1:  # a text holds a newline (or there are none)
        folded = [fold(t) for t in texts]
        return [words(f) for f in folded], [squeeze(f) for f in folded]
    folded_all = fold(joined)
    squeezed = _letters_only(folded_all, _LETTER_OR_LINE_TABLE)
    return words(folded_all).split("\n"), squeezed.split("\n")


CHAR_HASH = "poly31-fib64-v1"  # names the scheme below; a model trained with another is refused
_BASE = np.uint64(1_000_003)
_FIB = np.uint64(0x9E3779B97F4A7C15)


def char_ngram_matrix(texts: Sequence[str], ngrams: tuple[int, int], bits: int) -> sp.csr_matrix:
    """Binary, L2-normalised hashed character n-grams: one row per text, 2**bits columns."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    # Every code point of the batch in one array; a text's n-grams must not run into the next.
    points = code_points("".join(texts)).astype(np.uint64)
    ends = np.repeat(np.cumsum(lengths), lengths)  # one past the last point of each one's text
    kind = _key_kind(len(texts), bits)
    starts: np.ndarray[Any, Any] = np.arange(len(texts), dtype=kind)
    starts <<= kind(bits)  # each row's first key, shifted once a text, not once a code point
    rows = np.repeat(starts, lengths)
    keys = [np.zeros(0, dtype=kind)]
    for n, hashed in _ngram_hashes(points, ngrams):
        count = len(hashed)
        inside = np.arange(count) + n <= ends[:count]
        column = (hashed[inside] * _FIB) >> np.uint64(64 - bits)
        keys.append(rows[:count][inside] | column.astype(kind))
    return _from_keys(np.concatenate(keys), len(texts), bits)


def _ngram_hashes(
    points: np.ndarray[Any, Any], ngrams: tuple[int, int]
) -> Iterator[tuple[int, np.ndarray[Any, Any]]]:
    """(n, the hash of the n-gram starting at each position) for each n, modulo 2**64.

    The hash of an n-gram is n * B**n + sum(point[k] * B**(n-1-k)) (n seeds it: "abc" as a
    3-gram only), so the (n+1)-gram's is the n-gram's times B, plus its last point, plus
    B**(n+1): one multiply-add a size rather than one a code point of the gram."""
    low, high = ngrams
    count = len(points) - low + 1
    if count <= 0:
        return
    hashed = np.full(count, np.uint64(low))
    for k in range(low):  # uint64 arithmetic wraps: the hash is modulo 2**64
        hashed = hashed * _BASE + points[k : k + count]
    yield low, hashed
    for n in range(low + 1, high + 1):
        count = len(points) - n + 1
        if count <= 0:
            return
        # The power as a Python int, reduced: numpy warns when a scalar product wraps.
        power = np.uint64(pow(int(_BASE), n, 1 << 64))
        hashed = hashed[:count] * _BASE + points[n - 1 : n - 1 + count] + power
        yield n, hashed


def word_matrix(word_views: Sequence[str], ngrams: tuple[int, int], bits: int) -> sp.csr_matrix:
    """Binary, L2-normalised hashed word n-grams: the columns of scikit-learn's
    ``HashingVectorizer(analyzer="word", token_pattern=r"(?u)\\b\\w+\\b", lowercase=False,
    alternate_sign=False, binary=True, norm="l2")``, which the shipped weights were trained with.

    Its tokens and n-grams are made for the whole batch at once (``tokens``) and hashed with its
    MurmurHash3 (``murmur``), so the columns are its own by construction (tests)."""
    data, lengths, rows = word_grams(word_views, ngrams)
    columns = murmur3_columns(data, lengths, 1 << bits)
    kind = _key_kind(len(word_views), bits)
    key: np.ndarray[Any, Any] = rows.astype(kind)
    key <<= kind(bits)
    key |= columns.astype(kind)
    return _from_keys(key, len(word_views), bits)


def _key_kind(rows: int, bits: int) -> type[np.unsignedinteger[Any]]:
    # Keys are (row << bits) | column. In 32 bits when a batch's rows fit: sorting them, most
    # of a matrix's time, takes 40% less than sorting 64-bit keys.
    return np.uint32 if rows << bits <= 1 << 32 else np.uint64


def _from_keys(key: np.ndarray[Any, Any], rows: int, bits: int) -> sp.csr_matrix:
    """The binary, L2-normalised matrix of the keys ``(row << bits) | column``, in any order
    and repeated: sorted and deduplicated in one pass, binary features in CSR order (half the
    time of scipy's COO -> CSR conversion, which sorts and sums the same duplicates)."""
    kind = key.dtype.type
    key.sort()
    key = key[np.concatenate(([True], key[1:] != key[:-1]))] if len(key) else key
    return _binary_l2(
        (key & kind((1 << bits) - 1)).astype(np.int64),
        np.bincount((key >> kind(bits)).astype(np.int64), minlength=rows),
        1 << bits,
    )


def _binary_l2(
    columns: np.ndarray[Any, Any], per_row: np.ndarray[Any, Any], width: int
) -> sp.csr_matrix:
    """A CSR matrix of distinct, sorted columns per row, each 1/sqrt(the row's count)."""
    indptr = np.zeros(len(per_row) + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    data = np.repeat(1.0 / np.sqrt(np.maximum(per_row, 1)), per_row).astype(np.float32)
    return sp.csr_matrix((data, columns, indptr), shape=(len(per_row), width))


@dataclass(frozen=True)
class Featuriser:
    """The hashing parameters, saved in the artifact's card: scoring rebuilds the same columns."""

    word_bits: int = 19
    char_bits: int = 19
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    char_hash: str = CHAR_HASH

    @property
    def n_features(self) -> int:
        return (1 << self.word_bits) + (1 << self.char_bits)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Featuriser:
        return cls(
            word_bits=int(data["word_bits"]),
            char_bits=int(data["char_bits"]),
            word_ngrams=(int(data["word_ngrams"][0]), int(data["word_ngrams"][1])),
            char_ngrams=(int(data["char_ngrams"][0]), int(data["char_ngrams"][1])),
            char_hash=str(data["char_hash"]),
        )

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """One row per text: the word view's columns, then the squeezed view's."""
        return sp.hstack(self.blocks(texts), format="csr", dtype="float32")

    def blocks(self, texts: Sequence[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The word view's and the squeezed view's matrices, apart: scoring multiplies each by
        its rows of the weights rather than paying to stack them."""
        word_views, squeezed = views(texts)
        by_word = word_matrix(word_views, self.word_ngrams, self.word_bits)
        by_char = char_ngram_matrix(squeezed, self.char_ngrams, self.char_bits)
        return by_word, by_char
