"""Labelled examples for training: a text, a label per category where one is known, a split.

A label is ``True``, ``False`` or absent: a set that says nothing about a category (a spam set
about threats) leaves it out, and that category's head never sees the row. Rows are assigned to
the held-out split by a hash of their folded text unless the source has an official split, so a
text that occurs in two sets, or twice in one, is never on both sides.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modfleet.errors import FatalError
from modfleet.evaluate.data import read_utf8
from modfleet.model.features import fold, squeeze
from modfleet.normalise import normalise

TRAIN, TEST = "train", "test"
MAX_CHARS = 20_000  # the default pack's limit: the model learns from what the worker would see
_TRUE = frozenset({"true", "yes", "1", "1.0", "unsafe"})
_FALSE = frozenset({"false", "no", "0", "0.0", "safe"})


@dataclass(frozen=True)
class Example:
    text: str
    labels: Mapping[str, bool]
    split: str
    source: str
    group: str = ""  # a template or functional case: what the held-out split keeps apart


@dataclass
class Corpus:
    examples: list[Example] = field(default_factory=list)
    # source -> (licence, what it contributed), for the model card
    sources: dict[str, str] = field(default_factory=dict)

    def add(self, source: str, licence: str, examples: Iterable[Example]) -> None:
        self.examples.extend(examples)
        self.sources[source] = licence

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]


def example(
    text: str, labels: Mapping[str, bool | None], source: str, *, split: str = "", group: str = ""
) -> Example:
    """An example with its text in canonical form and its split decided (by hash if not given)."""
    canon = normalise(text, MAX_CHARS).text
    known = {name: value for name, value in labels.items() if value is not None}
    return Example(canon, known, split or hashed_split(group or canon), source, group)


def hashed_split(key: str, test_share: float = 0.2) -> str:
    """``test`` for a stable fifth of keys; near-duplicates (case, spacing, l33t) go together."""
    digest = hashlib.sha256(squeeze(fold(key)).encode("utf-8", "surrogatepass")).digest()
    return TEST if int.from_bytes(digest[:4], "big") / 2**32 < test_share else TRAIN


def read_labelled_file(path: Path, categories: Sequence[str]) -> list[Example]:
    """A JSONL or CSV file: ``text``, a field per category, optional ``split`` and ``group``.

    Labels read as in ``modfleet eval``: true/false, yes/no, 1/0, unsafe/safe; an empty or
    missing field means "not labelled for this category".
    """
    rows = _jsonl(path) if path.suffix.lower() in (".jsonl", ".ndjson") else _csv(path)
    out = []
    for line, row in rows:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise FatalError(f"{path}:{line}: field 'text' is missing or empty")
        labels = {name: _label(row.get(name), path, line, name) for name in categories}
        split = str(row.get("split") or "")
        if split and split not in (TRAIN, TEST):
            raise FatalError(f"{path}:{line}: split {split!r} is neither {TRAIN!r} nor {TEST!r}")
        group = str(row.get("group") or "")
        out.append(example(text, labels, path.name, split=split, group=group))
    return out


def _label(raw: Any, path: Path, line: int, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().casefold()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise FatalError(f"{path}:{line}: field {name!r} is {raw!r}, not a yes/no label")


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, raw in enumerate(io.StringIO(read_utf8(path), newline=None), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FatalError(f"{path}:{line}: not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise FatalError(f"{path}:{line}: a row must be a JSON object")
        rows.append((line, value))
    return rows


def _csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # posts may be long
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""))
    header = next(reader, [])
    rows = []
    start = reader.line_num + 1
    for cells in reader:
        if cells:  # a quoted field may span lines: a row is where it starts
            rows.append((start, dict(zip(header, cells, strict=False))))
        start = reader.line_num + 1
    return rows
