"""Rows of replay sources become post.v1 records, or bad rows that say where and why."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest
from cli_runs import with_broker_down
from posts import encode, post

from modfleet.errors import FatalError
from modfleet.replay.rows import BadRow, FieldMap, PostRow, Row, from_json
from modfleet.replay.sources import detect_format, open_file
from modfleet.replay.topic_source import Offsets

FIELDS = FieldMap()


def value(row: Row) -> dict[str, object]:
    assert isinstance(row, PostRow), row
    decoded = orjson.loads(row.value)
    assert isinstance(decoded, dict)
    return decoded


async def rows_of(path: Path, fields: FieldMap = FIELDS) -> list[Row]:
    return [row async for row in open_file(path, fields).rows()]


def test_a_post_v1_passes_through_byte_for_byte() -> None:
    raw = b'{"schema_version": 1, "post_id": "p", "tenant": "not ok!", "text": "x", "extra": 1}'
    assert from_json(raw, "line 1", FIELDS) == PostRow("line 1", raw)


def test_other_json_is_mapped_with_defaults_for_what_it_lacks() -> None:
    fields = FieldMap(id_field="id", text_field="body", tenant="t0")
    row = from_json(b'{"id": 42, "body": "hi", "lang": "en", "author_id": ""}', "line 3", fields)
    assert value(row) == {
        "schema_version": 1, "post_id": "42", "tenant": "t0", "text": "hi", "lang": "en"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{oops", "invalid_json"),
        (b'"a string"', "not_an_object"),
        (b'{"post_id": "p"}', "missing_field"),
        (b'{"post_id": "p", "text": ""}', "missing_field"),
        (b'{"post_id": "p", "text": 7}', "wrong_type"),
        (b'{"post_id": true, "text": "x"}', "wrong_type"),
        (b'{"text": "x"}', "missing_field"),
    ],
)
def test_bad_rows_name_their_problem(raw: bytes, code: str) -> None:
    row = from_json(raw, "line 9", FIELDS)
    assert isinstance(row, BadRow)
    assert (row.where, row.code) == ("line 9", code)
    assert str(row).startswith(f"line 9: {code}: ")


def test_a_dead_letter_replays_its_original_post() -> None:
    original = encode(post("p-1", "hello"))
    letter = {
        "reason": {"code": "inference_failed"},
        "source": {"topic": "modfleet.posts.v1", "partition": 0, "offset": 7},
        "original_b64": base64.b64encode(original).decode(),
    }
    row = from_json(orjson.dumps(letter), "x", FIELDS)
    assert row == PostRow("x", original)


@pytest.mark.parametrize("source", [{"topic": "modfleet.reviews.v1"}, {}, None, "posts"])
def test_a_dead_letter_of_another_topic_is_not_replayed_as_a_post(source: object) -> None:
    # The dead-letter topic holds invalid reviews too: a review's original, written by anyone
    # who can write reviews, names a tenant and a text, and must not become that tenant's post.
    forged = {"post_id": "p1", "tenant": "victim", "text": "buy cheap pills now", "verdicts": {}}
    letter = {
        "reason": {"code": "schema_invalid"},
        "source": source,
        "original_b64": base64.b64encode(orjson.dumps(forged)).decode(),
    }
    row = from_json(orjson.dumps(letter), "x", FIELDS)
    assert isinstance(row, BadRow)
    assert row.code == "invalid_row"
    assert "not of the posts topic 'modfleet.posts.v1'" in row.message


def test_a_truncated_dead_letter_is_a_bad_row() -> None:
    letter = {"reason": {}, "original_b64": "e30=", "original_truncated": True}
    row = from_json(orjson.dumps(letter), "x", FIELDS)
    assert isinstance(row, BadRow)
    assert row.code == "invalid_row"


async def test_jsonl_lines_are_numbered_as_an_editor_numbers_them(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(encode(post("a", "x")) + b"\n\n  \n{bad\n" + encode(post("b", "y")))
    source = open_file(path, FIELDS)
    rows = await rows_of(path)
    assert source.total == 3
    assert [r.where for r in rows] == ["line 1", "line 4", "line 5"]
    assert [type(r) for r in rows] == [PostRow, BadRow, PostRow]


async def test_csv_rows_are_located_by_their_first_line(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('post_id,text\na,"two\nlines"\nb,\nc,fine\n')
    rows = await rows_of(path)
    assert [(r.where, type(r).__name__) for r in rows] == [
        ("line 2", "PostRow"),
        ("line 4", "BadRow"),
        ("line 5", "PostRow"),
    ]
    assert value(rows[0])["text"] == "two\nlines"
    assert open_file(path, FIELDS).total == 3


async def test_undecodable_csv_bytes_spoil_only_their_row(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"post_id,text\na,caf\xe9\nb,fine\n")
    rows = await rows_of(path)
    assert [(r.where, type(r).__name__) for r in rows] == [
        ("line 2", "BadRow"),
        ("line 3", "PostRow"),
    ]


async def test_parquet_timestamps_become_rfc3339(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "p.parquet"
    table = pa.table(
        {
            "post_id": [1, 2],
            "text": ["x", None],
            "created_at": pa.array([0, 1000], pa.timestamp("ms")),
        }
    )
    pq.write_table(table, path)
    rows = await rows_of(path)
    assert value(rows[0])["created_at"] == "1970-01-01T00:00:00Z"
    assert isinstance(rows[1], BadRow)
    assert rows[1].where == "row 2"


def test_formats_come_from_suffixes_or_an_error_says_how_to_choose(tmp_path: Path) -> None:
    assert detect_format(Path("a.ndjson")) == "jsonl"
    assert detect_format(Path("a.PARQUET")) == "parquet"
    with pytest.raises(FatalError, match="--format"):
        detect_format(Path("a.txt"))


def test_offsets_per_partition_or_for_all() -> None:
    offsets = Offsets.parse(["100", "2:7"])
    assert (offsets.get(0), offsets.get(2)) == (100, 7)
    assert Offsets.parse([]).get(0) is None
    for bad in ("x", "1:y", "-3"):
        with pytest.raises(FatalError):
            Offsets.parse([bad])


@pytest.mark.parametrize(("tenant", "kept"), [(42, "42"), ("globex", "globex"), ("", "acme")])
def test_a_rows_own_tenant_is_kept_and_the_default_only_fills_a_missing_one(
    tenant: object, kept: str
) -> None:
    # A number is a tenant id (a Parquet int64 column): never to be moved to --tenant's tenant.
    raw = orjson.dumps({"post_id": 1001, "text": "hi", "tenant": tenant})
    assert value(from_json(raw, "line 1", FieldMap(tenant="acme")))["tenant"] == kept


@pytest.mark.parametrize("tenant", [True, 4.2, ["acme"], {"id": 1}])
def test_a_tenant_of_another_type_is_a_bad_row(tenant: object) -> None:
    raw = orjson.dumps({"post_id": "p", "text": "hi", "tenant": tenant})
    row = from_json(raw, "line 4", FieldMap(tenant="acme"))
    assert isinstance(row, BadRow)
    assert (row.where, row.code) == ("line 4", "wrong_type")
    assert "'tenant'" in row.message


async def test_a_parquet_column_of_numeric_tenants_keeps_each_tenant(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"post_id": [1, 2], "text": ["a", "b"], "tenant": [7, 9]}), path)
    rows = await rows_of(path, FieldMap(tenant="acme"))
    assert [value(r)["tenant"] for r in rows] == ["7", "9"]


async def test_a_csv_saved_with_a_byte_order_mark_reads_its_first_column(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8" starts with a BOM, which would otherwise become part of "post_id".
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffpost_id,text,tenant\np1,hello there,acme\n".encode())
    rows = await rows_of(path)
    assert [value(r)["post_id"] for r in rows] == ["p1"]


async def test_a_jsonl_file_with_a_byte_order_mark_reads_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + encode(post("a", "x")) + b"\n")
    rows = await rows_of(path)
    assert [value(r)["post_id"] for r in rows] == ["a"]


def test_a_file_that_is_not_parquet_is_refused_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1garbagegarbagePAR1")
    with pytest.raises(FatalError, match=f"{path}: not a readable Parquet file"):
        open_file(path, FIELDS)


async def test_a_parquet_file_corrupt_inside_names_the_file_and_the_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "mid.parquet"
    texts = [f"hello world {i}" for i in range(5000)]
    pq.write_table(pa.table({"post_id": list(range(5000)), "text": texts}), path,
                   compression="snappy", row_group_size=1000)  # fmt: skip
    spoilt = bytearray(path.read_bytes())
    middle = len(spoilt) // 3
    spoilt[middle : middle + 200] = b"\xff" * 200
    path.write_bytes(bytes(spoilt))
    with pytest.raises(FatalError, match=f"{path}: row 1: cannot read the Parquet data"):
        await rows_of(path)


def test_a_replay_with_the_broker_down_is_one_line_naming_it(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"post_id": "1", "tenant": "acme", "text": "hi"}\n')
    last, port = with_broker_down("replay", str(rows), "--timeout", "5")
    assert last.startswith(f"modfleet: cannot reach the broker at 127.0.0.1:{port}: "), last
