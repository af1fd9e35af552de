import orjson
import pytest

from modfleet.ingest import Post, Record, Rejection, decode


def record(value: bytes | None) -> Record:
    return Record("posts", 0, 7, 1_700_000_000.0, b"k", value)


def test_valid_post_decodes() -> None:
    body = {"schema_version": 1, "post_id": "p1", "tenant": "acme", "text": "hi"}
    result = decode(record(orjson.dumps(body)))
    assert isinstance(result, Post)
    assert (result.post_id, result.tenant, result.text) == ("p1", "acme", "hi")


@pytest.mark.parametrize(
    ("value", "code", "field"),
    [
        (b"\xff\xfe not utf-8", "not_utf8", None),
        (b'{"post_id": ', "not_json", None),
        (None, "not_json", None),
        (b"[1, 2]", "schema_invalid", ""),
        (b'{"schema_version": 1, "post_id": "p", "tenant": "t"}', "schema_invalid", "/text"),
        (
            b'{"schema_version": 1, "post_id": "p", "tenant": "t", "text": ["x"]}',
            "schema_invalid",
            "/text",
        ),
    ],
)
def test_bad_input_names_what_is_wrong(value: bytes | None, code: str, field: str | None) -> None:
    result = decode(record(value))
    assert isinstance(result, Rejection)
    assert result.code == code
    assert result.field == field
    assert result.message


def test_rejection_keeps_the_post_id_when_it_is_readable() -> None:
    body = {"schema_version": 1, "post_id": "p9", "tenant": "acme", "text": 5}
    result = decode(record(orjson.dumps(body)))
    assert isinstance(result, Rejection)
    assert (result.post_id, result.tenant) == ("p9", "acme")


def test_reason_for_a_huge_bad_value_stays_short() -> None:
    body = {"schema_version": 1, "post_id": "p", "tenant": "x" * 1_000_000 + "!", "text": "t"}
    result = decode(record(orjson.dumps(body)))
    assert isinstance(result, Rejection)
    assert result.field == "/tenant"
    assert len(result.message) < 1000


def test_deeply_nested_json_is_rejected_not_crashing() -> None:
    result = decode(record(b"[" * 100_000 + b"]" * 100_000))
    assert isinstance(result, Rejection)
