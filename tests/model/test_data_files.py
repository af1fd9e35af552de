"""`modfleet model train --data FILE` on files that once crashed it or misplaced an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from modfleet.cli import main
from modfleet.errors import FatalError
from modfleet.model.data import read_labelled_file
from modfleet.model.train import CATEGORIES


def test_a_jsonl_file_that_is_not_utf8_is_refused_naming_the_line(tmp_path: Path) -> None:
    data = tmp_path / "latin1.jsonl"
    data.write_bytes(b'{"text": "fine", "spam": false}\n{"text": "caf\xe9", "spam": true}\n')
    result = CliRunner().invoke(main, ["model", "train", "--data", str(data),
                                       "--out", str(tmp_path / "m")])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert f"modfleet: {data}:2: not UTF-8" in result.output


def test_a_csv_file_that_is_not_utf8_is_refused_naming_the_line(tmp_path: Path) -> None:
    data = tmp_path / "latin1.csv"
    data.write_bytes(b"text,spam\nfine,no\ncaf\xe9,yes\n")
    with pytest.raises(FatalError, match=f"{data}:3: not UTF-8"):
        read_labelled_file(data, CATEGORIES)


def test_a_csv_post_over_128_kib_is_read(tmp_path: Path) -> None:
    # csv's default field limit is 131,072 characters.
    data = tmp_path / "long.csv"
    data.write_text("text,spam\n" + "buy now " * 25_000 + ",yes\nshort,no\n", encoding="utf-8")
    examples = read_labelled_file(data, CATEGORIES)
    assert [e.labels for e in examples] == [{"spam": True}, {"spam": False}]


def test_an_error_after_a_multi_line_field_names_the_rows_own_line(tmp_path: Path) -> None:
    data = tmp_path / "lines.csv"
    data.write_text('text,hate\n"line one\nline two\nline three",yes\n"ok",maybe\n')
    with pytest.raises(FatalError, match=f"{data}:5: field 'hate' is 'maybe'"):
        read_labelled_file(data, CATEGORIES)


def test_rows_after_blank_lines_keep_their_line_numbers(tmp_path: Path) -> None:
    data = tmp_path / "gaps.csv"
    data.write_text("text,hate\n\nfine,no\n\n\nbad,maybe\n")
    with pytest.raises(FatalError, match=f"{data}:6: field 'hate' is 'maybe'"):
        read_labelled_file(data, CATEGORIES)
