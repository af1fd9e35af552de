from __future__ import annotations

from pathlib import Path

import pytest

from modfleet.errors import FatalError
from modfleet.evaluate.data import BadRow, FieldMap, read_labelled
from modfleet.policy import Policy


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_bad_rows_are_kept_with_the_line_they_start_on(tmp_path: Path, pack: Policy) -> None:
    path = _write(
        tmp_path,
        "posts.csv",
        'text,flagged\n"a post that\nspans two lines",yes\n,no\n\n'
        "ok post,no,extra\nfine,maybe\nlast,1\n",
    )
    data = read_labelled(path, pack, FieldMap())
    assert [(r.line, r.text, r.labels) for r in data.rows] == [
        (2, "a post that\nspans two lines", {"flagged": True}),
        (8, "last", {"flagged": True}),
    ]
    assert data.bad == [
        BadRow(4, "field 'text' is empty"),
        BadRow(6, "has 3 fields, the header has 2"),
        BadRow(
            7,
            "field 'flagged': 'maybe' is not a yes/no label; pass --positive-value to say which "
            "value means a violation",
        ),
    ]


def test_jsonl_bad_rows_name_their_line_and_reason(tmp_path: Path, pack: Policy) -> None:
    path = _write(
        tmp_path,
        "posts.jsonl",
        '{"text": "good", "harassment": true}\n'
        '{"harassment": false}\n'
        "\n"
        '{"text": 42, "harassment": false}\n'
        "{not json\n"
        "[1, 2]\n"
        '{"text": "no label"}\n',
    )
    data = read_labelled(path, pack, FieldMap())
    assert [(r.line, r.labels) for r in data.rows] == [(1, {"harassment": True})]
    assert [(b.line, b.reason.split(":")[0]) for b in data.bad] == [
        (2, "field 'text' is empty"),
        (4, "field 'text' is not text"),
        (5, "not valid JSON"),
        (6, "a row must be a JSON object, not list"),
        (7, "field 'harassment'"),
    ]


def test_word_labels_negated_in_pairs_are_read_without_help(tmp_path: Path, pack: Policy) -> None:
    path = _write(tmp_path, "t.csv", "text,is_toxic\nyou fool,Toxic\nhello,Not Toxic\n")
    data = read_labelled(path, pack, FieldMap())
    assert data.fields.flagged == "is_toxic"  # the only field besides the text
    assert data.fields.positive == {"Toxic"}
    assert [r.labels["flagged"] for r in data.rows] == [True, False]


def test_other_word_labels_need_positive_value(tmp_path: Path, pack: Policy) -> None:
    path = _write(tmp_path, "t.csv", "text,kind\na,abusive\nb,fine\n")
    with pytest.raises(FatalError, match=r"'kind' holds 'abusive', 'fine'.*--positive-value"):
        read_labelled(path, pack, FieldMap())
    data = read_labelled(path, pack, FieldMap(positive=frozenset({"ABUSIVE"})))
    assert [r.labels["flagged"] for r in data.rows] == [True, False]


def test_a_positive_value_that_never_occurs_is_an_error(tmp_path: Path, pack: Policy) -> None:
    path = _write(tmp_path, "t.csv", "text,kind\na,abusive\nb,fine\n")
    with pytest.raises(FatalError, match="never has the positive value abusve"):
        read_labelled(path, pack, FieldMap(positive=frozenset({"abusve"})))


def test_numeric_scores_as_labels_with_a_separator(tmp_path: Path, pack: Policy) -> None:
    path = _write(tmp_path, "e.csv", "comment;isHate\nx;0.8\ny;0.2\nz;0.5\n")
    fields = FieldMap(text="comment", flagged="isHate", positive_min=0.5)
    data = read_labelled(path, pack, fields, sep=";")
    assert [r.labels["flagged"] for r in data.rows] == [True, False, True]


def test_wrong_separator_is_named(tmp_path: Path, pack: Policy) -> None:
    path = _write(tmp_path, "e.csv", "comment;isHate\nx;0.8\n")
    with pytest.raises(FatalError, match=r"e.csv:1: the header has one field.*--sep"):
        read_labelled(path, pack, FieldMap())


def test_missing_fields_and_unknown_categories_are_named(tmp_path: Path, pack: Policy) -> None:
    path = _write(tmp_path, "p.csv", "body,flagged\nx,1\n")
    with pytest.raises(FatalError, match=r"p.csv: no field 'text'; the fields are: body, flagged"):
        read_labelled(path, pack, FieldMap())
    with pytest.raises(FatalError, match="has no category 'hate'"):
        read_labelled(path, pack, FieldMap(text="body", categories={"hate": "flagged"}))
    path = _write(tmp_path, "q.csv", "text,a,b\nx,1,0\n")
    with pytest.raises(FatalError, match="cannot tell which field holds the labels"):
        read_labelled(path, pack, FieldMap())


def test_mapped_category_fields(tmp_path: Path, pack: Policy) -> None:
    path = _write(tmp_path, "m.jsonl", '{"body": "x", "abuse": 1, "flag": true}\n')
    fields = FieldMap(text="body", flagged="flag", categories={"harassment": "abuse"})
    data = read_labelled(path, pack, fields)
    assert data.rows[0].labels == {"flagged": True, "harassment": True}
