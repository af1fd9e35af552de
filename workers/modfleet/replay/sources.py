"""Replay sources: JSONL, CSV and Parquet files, read lazily row by row.

Each source knows its row count up front where that is cheap (for the progress bar's ETA) and
locates every row the way a developer finds it again: a line number for text files, a row number
for Parquet.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from modfleet.errors import FatalError
from modfleet.replay.rows import BadRow, FieldMap, Row, from_json, from_mapping

_BOM = b"\xef\xbb\xbf"

FileFormat = Literal["jsonl", "csv", "parquet"]
_SUFFIXES: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class Source(Protocol):
    name: str
    total: int | None  # rows expected, when known before reading

    def rows(self) -> AsyncIterator[Row]: ...

    async def close(self) -> None: ...


def detect_format(path: Path) -> FileFormat:
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted(_SUFFIXES))
        raise FatalError(f"cannot tell the format of {path} ({known}); pass --format") from None


def open_file(path: Path, fields: FieldMap, fmt: FileFormat | None = None) -> Source:
    fmt = fmt or detect_format(path)
    if not path.is_file():
        raise FatalError(f"{path} is not a file")
    reader = {"jsonl": JsonlFile, "csv": CsvFile, "parquet": ParquetFile}[fmt]
    return reader(path, fields)


@dataclass
class _FileSource:
    path: Path
    fields: FieldMap

    def __post_init__(self) -> None:
        self.name = str(self.path)
        self.total = self._count()

    def _count(self) -> int | None:
        return None

    def _rows(self) -> Iterator[Row]:
        raise NotImplementedError

    async def rows(self) -> AsyncIterator[Row]:
        for row in self._rows():
            yield row

    async def close(self) -> None:
        pass  # files are closed as their rows are read to the end


class JsonlFile(_FileSource):
    def _count(self) -> int:
        with self.path.open("rb") as f:
            return sum(1 for line in f if line.strip())

    def _rows(self) -> Iterator[Row]:
        with self.path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                stripped = line.strip()
                if number == 1:  # a BOM (editors on Windows) is no part of the JSON
                    stripped = stripped.removeprefix(_BOM).lstrip()
                if stripped:  # a blank line is layout, not a row
                    yield from_json(stripped, f"line {number}", self.fields)


class CsvFile(_FileSource):
    def _count(self) -> int | None:
        try:
            with self._open() as f:
                return max(0, sum(1 for _ in csv.reader(f)) - 1)
        except csv.Error:
            return None  # the read proper reports where

    def _open(self) -> TextIO:
        # surrogateescape keeps undecodable bytes to report per row instead of failing the file;
        # utf-8-sig drops the BOM that Excel's "CSV UTF-8" starts with.
        return self.path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")

    def _rows(self) -> Iterator[Row]:
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # posts may be long
        with self._open() as f:
            reader = csv.DictReader(f)
            _ = reader.fieldnames  # reads the header now, so line_num counts it below
            while True:
                start = reader.line_num + 1  # a quoted field may span lines: report the first
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield BadRow(f"line {start}", "invalid_row", f"CSV: {exc}")
                    if reader.line_num < start:  # the reader is stuck: nothing more to read
                        return
                    continue
                yield self._row(record, f"line {start}")

    def _row(self, record: dict[str | Any, Any], where: str) -> Row:
        if None in record:  # DictReader files surplus cells under None
            return BadRow(where, "invalid_row", "more cells than the header has columns")
        return from_mapping(record, where, self.fields)


class ParquetFile(_FileSource):
    def _parquet(self) -> Any:
        pq, arrow_error = _pyarrow()
        try:
            return pq.ParquetFile(self.path)
        except (arrow_error, OSError) as exc:
            raise FatalError(f"{self.path}: not a readable Parquet file: {exc}") from exc

    def _count(self) -> int:
        return int(self._parquet().metadata.num_rows)

    def _rows(self) -> Iterator[Row]:
        number = 0
        batches = self._parquet().iter_batches(batch_size=4096)
        _, arrow_error = _pyarrow()
        while True:
            try:
                batch = next(batches, None)
            except (arrow_error, OSError) as exc:  # a corrupt page: the rest is unreadable
                where = f"{self.path}: row {number + 1}"
                raise FatalError(f"{where}: cannot read the Parquet data: {exc}") from exc
            if batch is None:
                return
            for record in batch.to_pylist():
                number += 1
                yield from_mapping(record, f"row {number}", self.fields)


def _pyarrow() -> tuple[Any, type[Exception]]:
    """``pyarrow.parquet`` and the base of pyarrow's errors; pyarrow is an optional extra."""
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise FatalError("reading Parquet needs pyarrow: pip install 'modfleet[replay]'") from exc
    return pq, pyarrow.ArrowException
