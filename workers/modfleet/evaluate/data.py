"""Labelled files: JSONL or CSV rows of a text and its labels, mapped onto a policy by field name.

A label is either per category (a field named like the category, or mapped to one or several:
any positive one makes it positive) or a single ``flagged`` label that says the post breaks the
pack at all. A row without a label for some category is used for the others; rows that cannot
be used at all are kept as :class:`BadRow` with their line number, so a report can say exactly
what it left out and why.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from modfleet.errors import FatalError
from modfleet.policy.model import FLAGGED, Policy

_TRUE = frozenset({"true", "yes", "y", "t", "1", "1.0", "unsafe"})
_FALSE = frozenset({"false", "no", "n", "f", "0", "0.0", "safe"})
_JSONL = frozenset({".jsonl", ".ndjson"})
Record = dict[str, Any]


@dataclass(frozen=True)
class FieldMap:
    """Which field holds the text, and which hold labels; ``None``/empty means "find it"."""

    text: str = "text"
    flagged: str | None = None
    # category -> its field, or several fields (positive if any is)
    categories: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    # Values that mean "violates", in any case; empty: yes/no, true/false, 1/0, unsafe/safe.
    positive: frozenset[str] = frozenset()
    # Numeric labels at or above this are positive (scores such as Ethos' isHate).
    positive_min: float | None = None
    group: str | None = None  # a field whose values get metrics of their own (--group-field)

    def label_fields(self) -> dict[str, tuple[str, ...]]:
        """Evaluation label -> its fields, ``flagged`` first."""
        labels = {FLAGGED: (self.flagged,)} if self.flagged else {}
        return labels | {
            name: (fields,) if isinstance(fields, str) else tuple(fields)
            for name, fields in self.categories.items()
        }

    def all_label_fields(self) -> list[str]:
        return list(dict.fromkeys(f for fields in self.label_fields().values() for f in fields))


@dataclass(frozen=True)
class Row:
    line: int
    text: str
    labels: dict[str, bool]  # only the labels the row has: a missing one is left out, not False
    group: str | None = None


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


Parsed = tuple[int, Record | BadRow]  # a row or why it is unusable, at its 1-based line


@dataclass(frozen=True)
class LabelledSet:
    path: Path
    fields: FieldMap  # as resolved against the file
    rows: list[Row]
    bad: list[BadRow]
    values: dict[str, dict[str, int]]  # label field -> raw value -> count, for the report


def read_labelled(
    path: Path, policy: Policy, fields: FieldMap, *, sep: str | None = None, fmt: str = "auto"
) -> LabelledSet:
    """Every row of ``path``: usable ones as :class:`Row`, the others as :class:`BadRow`."""
    columns, records = _records(Path(path), sep, fmt)
    resolved = _resolve_positive(resolve_fields(fields, columns, policy, path), records, path)
    rows: list[Row] = []
    bad: list[BadRow] = []
    values: dict[str, Counter[str]] = {f: Counter() for f in resolved.all_label_fields()}
    for line, record in records:
        parsed = record if isinstance(record, BadRow) else _row(line, record, resolved, values)
        if isinstance(parsed, BadRow):
            bad.append(parsed)
        else:
            rows.append(parsed)
    _check_positive_seen(resolved, values, path)
    counts = {name: dict(counter.most_common()) for name, counter in values.items()}
    return LabelledSet(Path(path), resolved, rows, bad, counts)


def resolve_fields(fields: FieldMap, columns: list[str], policy: Policy, path: Path) -> FieldMap:
    """``fields`` with its label fields found; a clear error when a named field is missing."""
    have = ", ".join(columns) or "(none)"
    for name in [fields.text, *fields.all_label_fields(), *filter(None, [fields.group])]:
        if name not in columns:
            raise FatalError(f"{path}: no field {name!r}; the fields are: {have}")
    unknown = sorted(set(fields.categories) - set(policy.categories))
    if unknown:
        known = ", ".join(policy.categories)
        raise FatalError(f"policy {policy.id!r} has no category {unknown[0]!r}; it has: {known}")
    if fields.flagged or fields.categories:
        return fields
    return _guess_labels(fields, columns, policy, path)


def _guess_labels(fields: FieldMap, columns: list[str], policy: Policy, path: Path) -> FieldMap:
    # Convention first (a "flagged" field, fields named like categories), then the only other
    # column: a two-column file of text and label is the commonest public format.
    flagged = FLAGGED if FLAGGED in columns else None
    categories = {name: name for name in policy.categories if name in columns}
    others = [c for c in columns if c != fields.text]
    if not flagged and not categories and len(others) == 1:
        flagged = others[0]
    if not flagged and not categories:
        raise FatalError(
            f"{path}: cannot tell which field holds the labels (fields: {', '.join(columns)}); "
            "pass --label-field or --category-field"
        )
    return replace(fields, flagged=flagged, categories=categories)


def _resolve_positive(fields: FieldMap, records: list[Parsed], path: Path) -> FieldMap:
    """``fields`` with the positive label value found, when the labels are words, not yes/no.

    Two values where one is the other negated ("Toxic" / "Not Toxic") are read without help;
    any other set of words needs --positive-value, since guessing wrong would invert the labels.
    """
    if fields.positive or fields.positive_min is not None:
        return fields
    for name in fields.all_label_fields():
        values = {
            str(record[name]).strip()
            for _, record in records
            if not isinstance(record, BadRow) and _plain(record.get(name)) != "(empty)"
        }
        words = sorted(v for v in values if _label(v, fields) is None)
        if not words or len(words) < len(values):
            continue  # yes/no labels, with at most a few bad rows among them
        positive = _negation_pair(words)
        if positive is None:
            shown = ", ".join(repr(w) for w in words[:8])
            raise FatalError(
                f"{path}: field {name!r} holds {shown}: not yes/no labels; "
                "pass --positive-value to say which value means a violation"
            )
        fields = replace(fields, positive=frozenset({positive}))
    return fields


def _negation_pair(words: list[str]) -> str | None:
    if len(words) != 2:
        return None
    a, b = sorted(words, key=len)
    negated = {f"{prefix}{a.casefold()}" for prefix in ("not ", "not-", "non-", "non ", "no ")}
    return a if b.casefold() in negated else None


def _row(
    line: int, record: Record, fields: FieldMap, values: dict[str, Counter[str]]
) -> Row | BadRow:
    text = record.get(fields.text)
    if not isinstance(text, str) or not text.strip():
        what = "is empty" if text is None or isinstance(text, str) else "is not text"
        return BadRow(line, f"field {fields.text!r} {what}")
    labels: dict[str, bool] = {}
    for label, names in fields.label_fields().items():
        found: list[bool] = []
        for name in names:
            raw = record.get(name)
            values[name][_plain(raw)] += 1
            if _plain(raw) == "(empty)":
                continue  # no label for this category: the row still counts for the others
            parsed = _label(raw, fields)
            if parsed is None:
                return BadRow(line, f"field {name!r}: {_display(raw)} {_label_hint(fields)}")
            found.append(parsed)
        if found:
            labels[label] = any(found)
    if not labels:
        empty = ", ".join(repr(n) for n in fields.all_label_fields())
        return BadRow(line, f"field {empty}: empty, so the row has no label at all")
    group = None if fields.group is None else _plain(record.get(fields.group))
    return Row(line, text, labels, group)


def _label(raw: Any, fields: FieldMap) -> bool | None:
    """True/False for a usable label, None for one that cannot be read."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if fields.positive:
        return str(raw).strip().casefold() in {p.casefold() for p in fields.positive}
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().casefold()
    if fields.positive_min is not None:
        try:
            return float(text) >= fields.positive_min
        except ValueError:
            return None
    return True if text in _TRUE else False if text in _FALSE else None


def _label_hint(fields: FieldMap) -> str:
    if fields.positive:
        return "is empty"
    if fields.positive_min is not None:
        return "is not a number"
    return "is not a yes/no label; pass --positive-value to say which value means a violation"


def _display(raw: Any) -> str:
    return repr(raw) if isinstance(raw, str) and raw else _plain(raw)


def _plain(raw: Any) -> str:
    return "(empty)" if raw is None or raw == "" else str(raw).strip()


def _check_positive_seen(fields: FieldMap, values: dict[str, Counter[str]], path: Path) -> None:
    # A mistyped --positive-value would otherwise quietly make every row negative.
    if not fields.positive:
        return
    for name, counter in values.items():
        seen = {value.casefold() for value in counter}
        if counter and not seen & {p.casefold() for p in fields.positive}:
            found = ", ".join(repr(value) for value in list(counter)[:8])
            raise FatalError(
                f"{path}: field {name!r} never has the positive value "
                f"{', '.join(sorted(fields.positive))}; its values are: {found}"
            )


def read_utf8(path: Path) -> str:
    """The text of ``path``, a UTF-8 BOM dropped; an error naming the line of any byte that is
    not UTF-8 (a file saved as Latin-1 or Windows-1252 decodes to nothing safe to guess)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FatalError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise FatalError(
            f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}); "
            "save it as UTF-8"
        ) from exc
    return text.removeprefix("\ufeff")


def _records(path: Path, sep: str | None, fmt: str) -> tuple[list[str], list[Parsed]]:
    if not path.is_file():
        raise FatalError(f"{path}: no such file")
    kind = fmt if fmt != "auto" else "jsonl" if path.suffix.lower() in _JSONL else "csv"
    text = read_utf8(path)
    if kind == "jsonl":
        return _jsonl(io.StringIO(text, newline=None))
    delimiter = sep or ("\t" if path.suffix.lower() == ".tsv" else ",")
    return _csv(path, io.StringIO(text, newline=""), delimiter)


def _jsonl(handle: TextIO) -> tuple[list[str], list[Parsed]]:
    parsed = [(n, _json_object(n, text)) for n, text in enumerate(handle, start=1) if text.strip()]
    # JSON rows carry their own names, and a field may be missing from some: every name any row
    # uses, in the order first seen, stands for the header.
    names = (name for _, r in parsed if not isinstance(r, BadRow) for name in r)
    return list(dict.fromkeys(names)), parsed


def _json_object(line: int, text: str) -> Record | BadRow:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadRow(line, f"not valid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(value, dict):
        return BadRow(line, f"a row must be a JSON object, not {type(value).__name__}")
    return value


def _csv(path: Path, handle: TextIO, delimiter: str) -> tuple[list[str], list[Parsed]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # posts may be long: replay takes them
    reader = csv.reader(handle, delimiter=delimiter)
    parsed: list[Parsed] = []
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            # A quoted field may span lines: a row's line is where it starts, not where it ends.
            if header is None:
                header = [name.strip() for name in cells]
            elif cells:
                parsed.append((start, _csv_record(start, cells, header)))
            start = reader.line_num + 1
    except csv.Error as exc:
        # The reader cannot resume, and dropping the rest of the file quietly is not an option.
        raise FatalError(f"{path}:{start}: cannot read the row: {exc}") from exc
    if header is None:
        raise FatalError(f"{path}: the file is empty")
    if len(header) < 2:
        raise FatalError(
            f"{path}:1: the header has one field ({header[0]!r}); is the separator "
            f"{delimiter!r} right? (--sep)"
        )
    return header, parsed


def _csv_record(line: int, cells: list[str], header: list[str]) -> Record | BadRow:
    if len(cells) != len(header):
        return BadRow(line, f"has {len(cells)} fields, the header has {len(header)}")
    return dict(zip(header, cells, strict=True))
