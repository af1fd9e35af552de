import orjson
import pytest

from modfleet.contracts.schemas import violations
from modfleet.emit import dead_letter_message
from modfleet.emit.budget import DEFAULT_BUDGET
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


def test_duplicate_keys_are_refused_naming_the_key() -> None:
    # Parsers disagree on which value wins: the platform could show one text, we judge another.
    value = b'{"schema_version": 1, "post_id": "p", "tenant": "t", "text": "nice day", "text": "x"}'
    result = decode(record(value))
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == ("schema_invalid", "/text")
    assert "duplicate key 'text'" in result.message
    assert result.post_id == "p"


def test_duplicate_keys_inside_attributes_too() -> None:
    value = (
        b'{"schema_version": 1, "post_id": "p", "tenant": "t", "text": "x",'
        b' "attributes": {"a": "1", "a" : "2"}}'
    )
    result = decode(record(value))
    assert isinstance(result, Rejection)
    assert "duplicate key 'a'" in result.message


def test_colons_inside_text_are_not_duplicate_keys() -> None:
    body = {"schema_version": 1, "post_id": "p", "tenant": "t", "text": 'say "a": "b" "c":'}
    assert isinstance(decode(record(orjson.dumps(body))), Post)


def test_deep_nesting_is_refused_before_validation() -> None:
    inner = b"[" * 1000 + b"]" * 1000
    head = b'{"schema_version": 1, "post_id": "p", "tenant": "t", "text": "x", "attributes": '
    result = decode(record(head + b'{"a": ' + inner + b"}}"))
    assert isinstance(result, Rejection)
    assert result.code == "schema_invalid"
    assert "nested deeper" in result.message
    assert result.field is not None
    assert result.field.startswith("/attributes/a")


def test_a_post_with_90k_attributes_is_refused_by_its_shape() -> None:
    attributes = {f"k{i}": "v" for i in range(90_000)}
    body = {"schema_version": 1, "post_id": "p", "tenant": "t", "text": "x"}
    result = decode(record(orjson.dumps({**body, "attributes": attributes})))
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == ("schema_invalid", "/attributes")
    assert len(result.message) < 400


def test_a_value_over_the_limit_is_not_parsed() -> None:
    result = decode(record(b"{" * 5000), max_bytes=4096)
    assert isinstance(result, Rejection)
    assert result.code == "too_large"
    assert "5,000 bytes" in result.message


def test_huge_numbers_are_rejected_not_raised() -> None:
    value = b'{"schema_version": 1, "post_id": "p", "tenant": "t", "text": 1' + b"0" * 5000 + b"}"
    result = decode(record(value))
    assert isinstance(result, Rejection)
    assert result.code in {"not_json", "schema_invalid"}


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        (b'{"text": "1", "text": "2"}', "/attributes/text"),  # not the post's own, valid text
        (b'{"a": "1", "a" : "2"}', "/attributes/a"),  # not a top-level "a" that does not exist
        (b'{"x/y~": "1", "x/y~": "2"}', "/attributes/x~1y~0"),
        (b'{"": "1", "": "2"}', "/attributes/"),
    ],
)
def test_a_duplicate_key_inside_attributes_is_named_where_it_is(
    attributes: bytes, field: str
) -> None:
    value = b'{"schema_version": 1, "post_id": "p", "tenant": "t", "text": "ok", "attributes": '
    record_ = record(value + attributes + b"}")
    result = decode(record_)
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == ("schema_invalid", field)
    # What the platform reads: the dead letter's reason names the attribute, and is valid.
    body = orjson.loads(dead_letter_message(record_, result, "dl", DEFAULT_BUDGET).value)
    assert body["reason"]["field"] == field
    assert violations("dead_letter", body) == []


def test_a_duplicate_key_in_a_nested_array_is_named_where_it_is() -> None:
    result = decode(record(b'[{"k": 1}, {"k": 1, "k": 2}]'))
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == ("schema_invalid", "/1/k")


@pytest.mark.parametrize(
    "escaped",
    [
        "\\ud83d",  # the first half of an emoji: a JavaScript platform cut its text mid-pair
        "\\ude00",
        "\\ud83d\\u0041",
    ],
)
def test_a_lone_surrogate_escape_is_read_as_a_replacement_character_and_the_post_decided(
    escaped: str,
) -> None:
    # JSON allows it (RFC 8259) and JavaScript writes it when a cut at N UTF-16 units splits an
    # emoji; orjson refuses it, and the post was dead-lettered not_json, moderated by no one.
    value = (
        '{"schema_version": 1, "post_id": "s-1", "tenant": "acme", "text": "you idiot '
        + escaped
        + '"}'
    ).encode()
    found = decode(Record("posts", 0, 0, None, None, value))
    assert isinstance(found, Post), found
    assert found.text.startswith("you idiot \ufffd")
    found.text.encode("utf-8")  # writable: no surrogate is left


def test_a_lone_surrogate_escape_in_a_nested_bomb_is_still_not_json() -> None:
    value = b'{"text": "\\ud800", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    found = decode(Record("posts", 0, 0, None, None, value))
    assert isinstance(found, Rejection)
    assert found.code in ("not_json", "schema_invalid")
