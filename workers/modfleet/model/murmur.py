"""MurmurHash3 (x86, 32-bit, seed 0) of many byte strings at once, in numpy.

The word view's columns are scikit-learn's ``FeatureHasher``'s: each n-gram's UTF-8 bytes
hashed with MurmurHash3, the column ``abs(signed hash) % width``. The shipped weights were
trained on those columns, so they are fixed. ``FeatureHasher`` hashes one string at a time
behind per-sample Python iteration and a CSR build that sums duplicates; here the batch's
n-grams are hashed together, one 4-byte block position at a time across all of them.

A block position costs a handful of numpy calls whatever number of strings reach it, so a long
string (an attacker's 20,000-letter word) would cost one such round per 4 bytes: strings of
over ``_VECTOR_BLOCKS`` blocks are hashed one by one by scikit-learn's own function instead,
linear in their bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import murmurhash3_32  # type: ignore[import-untyped]

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)
_N = np.uint32(0xE6546B64)
_F1 = np.uint32(0x85EBCA6B)
_F2 = np.uint32(0xC2B2AE35)
_TAIL_MASK = np.array([0, 0xFF, 0xFFFF, 0xFFFFFF], dtype=np.uint32)
_VECTOR_BLOCKS = 64  # 256 bytes: a round of numpy calls per 4 bytes costs more beyond it

U32 = np.ndarray[Any, np.dtype[np.uint32]]


def _rotl(x: U32, r: int) -> U32:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _scramble(k: U32) -> U32:
    k = k * _C1
    return _rotl(k, 15) * _C2


def murmur3_columns(
    data: np.ndarray[Any, np.dtype[np.uint8]],
    lengths: np.ndarray[Any, np.dtype[np.int64]],
    width: int,
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The column ``abs(murmurhash3_32(s, seed=0)) % width`` of each string ``s``, the strings
    lying end to end in ``data`` with the byte lengths ``lengths``; ``width`` a power of two."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    hashes = np.zeros(len(lengths), dtype=np.uint32)
    blocks = lengths >> 2
    short = np.flatnonzero(blocks <= _VECTOR_BLOCKS)
    if len(short):
        hashes[short] = _hash_short(data, starts[short], lengths[short])
    for i in np.flatnonzero(blocks > _VECTOR_BLOCKS):
        s = int(starts[i])
        signed = murmurhash3_32(data[s : s + int(lengths[i])].tobytes(), seed=0, positive=False)
        hashes[i] = np.uint32(signed & 0xFFFFFFFF)
    # abs() of the hash read as signed: the two's complement of the negative ones.
    negative = hashes >> np.uint32(31) == 1
    hashes[negative] = ~hashes[negative] + np.uint32(1)
    return (hashes & np.uint32(width - 1)).astype(np.int64)


def _hash_short(
    data: np.ndarray[Any, np.dtype[np.uint8]],
    starts: np.ndarray[Any, np.dtype[np.int64]],
    lengths: np.ndarray[Any, np.dtype[np.int64]],
) -> U32:
    # The little-endian 4-byte word at every byte offset, as a view of the bytes (a stride of
    # one byte; no copy), padded so that the last string's tail word stays inside it.
    padded = np.zeros(len(data) + 4, dtype=np.uint8)
    padded[: len(data)] = data
    words: U32 = np.ndarray((len(data) + 1,), dtype="<u4", buffer=padded, strides=(1,))
    blocks = lengths >> 2
    # Longest first, so that the strings still having a block at position j are a prefix.
    order = np.argsort(-blocks, kind="stable")
    starts, blocks, lengths = starts[order], blocks[order], lengths[order]
    h = np.zeros(len(order), dtype=np.uint32)
    for j in range(int(blocks[0]) if len(blocks) else 0):
        reaching = int(np.searchsorted(-blocks, -j, side="left"))  # blocks > j
        k = _scramble(words[starts[:reaching] + 4 * j])
        mixed = _rotl(h[:reaching] ^ k, 13) * np.uint32(5) + _N
        h[:reaching] = mixed
    h ^= _scramble(words[starts + 4 * blocks] & _TAIL_MASK[lengths & 3])
    h ^= lengths.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= _F1
    h ^= h >> np.uint32(13)
    h *= _F2
    h ^= h >> np.uint32(16)
    out = np.empty_like(h)
    out[order] = h
    return out
