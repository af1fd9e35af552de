"""The JSON Schemas, their examples, and modfleet.contracts' enforcement of them."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from modfleet.contracts import (
    MESSAGE_TYPES,
    MessageInvalid,
    MessageType,
    check,
    first_violation,
    schema,
    validator,
    violations,
)
from modfleet.contracts.schemas import _accepts, _require_format_checks
from modfleet.errors import FatalError
from modfleet.normalise import normalise
from modfleet.resources import topics_dir

# The fields each message type must declare, exactly (the topic README documents them).
FIELDS: dict[str, set[str]] = {
    "post": {
        *("schema_version", "post_id", "tenant", "text", "author_id", "created_at", "lang"),
        "attributes",
    },
    "decision": {
        *("schema_version", "decision_id", "post_id", "tenant", "action", "scores", "labels"),
        *("policy_id", "policy_version", "model_id", "from_cache", "rationale", "content_hash"),
        *("truncated", "post_produced_at", "decided_at", "trace_id"),
    },
    "escalation": {
        *("schema_version", "decision_id", "post_id", "tenant", "reason", "action", "scores"),
        *("labels", "policy_id", "policy_version", "model_id", "text", "rationale"),
        *("post_produced_at", "escalated_at", "trace_id"),
    },
    "dead_letter": {
        *("schema_version", "reason", "source", "original_b64", "original_truncated", "post_id"),
        *("tenant", "dead_lettered_at", "trace_id"),
    },
    "review": {
        *("schema_version", "decision_id", "post_id", "tenant", "verdicts", "action"),
        *("reviewer", "reviewed_at"),
    },
}
POST_REQUIRED = {"schema_version", "post_id", "tenant", "text"}
# Optional fields added within v1 (additive, so consumers of v1 keep working).
OPTIONAL: dict[str, set[str]] = {
    "decision": {"stage", "policy_digest", "fallback_from", "rationale_truncated"},
    "escalation": {
        "stage",
        "raw_output",
        "raw_output_truncated",
        "rationale_truncated",
        "policy_digest",
        "text_truncated",
        "source",
        "fallback_from",
    },
    "dead_letter": {"original_omitted"},
    "review": {"note"},  # optional from the start: most reviews carry none
}


def example(message_type: MessageType) -> dict[str, Any]:
    path = topics_dir() / "examples" / f"{message_type}.v1.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def shipped_validator(message_type: MessageType) -> Draft202012Validator:
    """A plain validator of the file as another language would use it, without our fast path."""
    return Draft202012Validator(schema(message_type), format_checker=FormatChecker())


def subschemas(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for name, sub in node.get("properties", {}).items():
            yield from subschemas(sub, f"{where}/{name}")
        for keyword in ("items", "additionalProperties", "propertyNames", "not"):
            if isinstance(node.get(keyword), dict):
                yield from subschemas(node[keyword], f"{where}[{keyword}]")


# --- The schema files ---------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_schema_is_valid_draft_2020_12(message_type: MessageType) -> None:
    shipped = schema(message_type)
    Draft202012Validator.check_schema(shipped)
    assert shipped["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert shipped["$id"] == f"https://modfleet.dev/schemas/{message_type}.v1.schema.json"
    assert shipped["title"]
    assert shipped["description"]


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_schema_declares_exactly_the_contract_fields(message_type: MessageType) -> None:
    shipped = schema(message_type)
    optional = OPTIONAL.get(message_type, set())
    assert set(shipped["properties"]) == FIELDS[message_type] | optional
    required = POST_REQUIRED if message_type == "post" else FIELDS[message_type]
    assert set(shipped["required"]) == required
    assert shipped["properties"]["schema_version"] == {
        "description": shipped["properties"]["schema_version"]["description"],
        "type": "integer",
        "const": 1,
    }


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_every_object_is_closed_and_every_property_described(message_type: MessageType) -> None:
    for where, node in subschemas(schema(message_type)):
        if "properties" in node:
            assert node.get("additionalProperties") is False, where
            assert set(node["required"]) <= set(node["properties"]), where
            for name, sub in node["properties"].items():
                assert sub.get("description", "").strip(), f"{where}/{name}"


def test_post_text_has_no_length_limit() -> None:
    assert "maxLength" not in schema("post")["properties"]["text"]
    long_post = example("post") | {"text": "a" * 2_000_000}
    assert violations("post", long_post) == []


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_shipped_patterns_are_plain_ecma_262(message_type: MessageType) -> None:
    for where, node in subschemas(schema(message_type)):
        if "pattern" in node:
            assert r"\Z" not in node["pattern"], where
            re.compile(node["pattern"])


# --- Examples -----------------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_example_is_valid(message_type: MessageType) -> None:
    message = example(message_type)
    assert list(shipped_validator(message_type).iter_errors(message)) == []
    assert violations(message_type, message) == []
    assert first_violation(message_type, message) is None
    check(message_type, message)


@pytest.mark.parametrize("message_type", ["decision", "escalation"])
def test_example_decision_id_follows_the_documented_formula(message_type: MessageType) -> None:
    message = example(message_type)
    parts = ("post_id", "policy_id", "policy_version", "policy_digest", "tenant")
    # An escalation's decision (the one it shares its id with) holds the content hash.
    content_hash = message.get("content_hash") or normalise(message["text"], 20_000).content_hash
    material = "\x1f".join([*(message[part] for part in parts), content_hash])
    assert message["decision_id"] == hashlib.sha256(material.encode()).hexdigest()


def test_examples_of_one_post_agree() -> None:
    post, decision = example("post"), example("decision")
    assert (decision["post_id"], decision["tenant"]) == (post["post_id"], post["tenant"])


# --- Violations and their pointers --------------------------------------------------------------


def drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(message: dict[str, Any]) -> None:
        del _parent(message, path)[path[-1]]

    return mutate


def put(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(message: dict[str, Any]) -> None:
        _parent(message, path)[path[-1]] = value

    return mutate


def _parent(message: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for name in path[:-1]:
        message = message[name]
    return message


BROKEN: list[tuple[MessageType, Callable[[dict[str, Any]], None], str]] = [
    ("post", drop("post_id"), "/post_id"),
    ("post", drop("text"), "/text"),
    ("post", put(5, "text"), "/text"),
    ("post", put(None, "text"), "/text"),
    ("post", put("acme corp", "tenant"), "/tenant"),
    ("post", put("acme\n", "tenant"), "/tenant"),  # Python's "$" alone would let this pass
    ("post", put("", "tenant"), "/tenant"),
    ("post", put("", "post_id"), "/post_id"),
    ("post", put("p\x001", "post_id"), "/post_id"),
    ("post", put("p\u00851", "post_id"), "/post_id"),
    ("post", put("x" * 257, "post_id"), "/post_id"),
    ("post", put(2, "schema_version"), "/schema_version"),
    ("post", put("1", "schema_version"), "/schema_version"),
    ("post", put(True, "schema_version"), "/schema_version"),
    ("post", put(1, "shadow_banned"), "/shadow_banned"),
    ("post", put(1, "a/b~c"), "/a~1b~0c"),
    ("post", put("2025-13-01T00:00:00Z", "created_at"), "/created_at"),
    ("post", put("yesterday", "created_at"), "/created_at"),
    ("post", put("2025-03-14 09:26:53", "created_at"), "/created_at"),
    ("post", put("english!", "lang"), "/lang"),
    ("post", put({"a": 1}, "attributes"), "/attributes/a"),
    ("decision", drop("from_cache"), "/from_cache"),
    ("decision", put("ban", "action"), "/action"),
    ("decision", put({"scam": 1.5}, "scores"), "/scores/scam"),
    ("decision", put({"scam": "high"}, "scores"), "/scores/scam"),
    ("decision", put(["scam", "scam"], "labels"), "/labels"),
    ("decision", put("A" * 64, "decision_id"), "/decision_id"),
    ("decision", put("0" * 32, "trace_id"), "/trace_id"),
    ("decision", put("abc", "trace_id"), "/trace_id"),
    ("decision", put("now", "decided_at"), "/decided_at"),
    ("decision", put(5, "rationale"), "/rationale"),
    ("decision", put(None, "truncated"), "/truncated"),
    ("escalation", put("bored", "reason"), "/reason"),
    ("escalation", drop("text"), "/text"),
    ("escalation", put(None, "trace_id"), "/trace_id"),
    ("dead_letter", put("oops", "reason", "code"), "/reason/code"),
    ("dead_letter", put("text", "reason", "field"), "/reason/field"),
    ("dead_letter", drop("source", "key_b64"), "/source/key_b64"),
    ("dead_letter", put(-1, "source", "partition"), "/source/partition"),
    ("dead_letter", put(1.5, "source", "offset"), "/source/offset"),
    ("dead_letter", put("yesterday", "source", "timestamp"), "/source/timestamp"),
    ("dead_letter", put("not base64!", "original_b64"), "/original_b64"),
    ("dead_letter", put("ABC", "trace_id"), "/trace_id"),
    ("review", drop("decision_id"), "/decision_id"),
    ("review", put("x" * 2001, "note"), "/note"),
    ("review", put({"hate": "yes"}, "verdicts"), "/verdicts/hate"),
    ("review", put({f"c{i}": True for i in range(65)}, "verdicts"), "/verdicts"),
    ("review", put("ban", "action"), "/action"),
    ("review", put("alice@example.com", "reviewer"), "/reviewer"),
    ("review", put("acme corp", "tenant"), "/tenant"),
    ("review", put("yesterday", "reviewed_at"), "/reviewed_at"),
]


@pytest.mark.parametrize(("message_type", "mutate", "pointer"), BROKEN)
def test_broken_message_is_blamed_on_the_right_field(
    message_type: MessageType, mutate: Callable[[dict[str, Any]], None], pointer: str
) -> None:
    message = copy.deepcopy(example(message_type))
    mutate(message)
    found = violations(message_type, message)
    assert found, "accepted"
    assert found[0].pointer == pointer, found
    assert first_violation(message_type, message) == found[0]
    assert not validator(message_type).is_valid(message)  # jsonschema itself agrees


@pytest.mark.parametrize(
    ("message_type", "mutate"),
    [
        ("post", drop("author_id")),
        ("post", drop("attributes")),
        ("post", put("2025-03-14T09:26:53+01:00", "created_at")),
        ("post", put("", "text")),
        ("post", put(1.0, "schema_version")),  # JSON cannot tell 1.0 from 1
        ("decision", put(None, "rationale")),
        ("decision", put({}, "scores")),
        ("decision", put([], "labels")),
        ("dead_letter", put(None, "trace_id")),
        ("dead_letter", put(None, "source", "timestamp")),
        ("dead_letter", put(None, "source", "key_b64")),
        ("dead_letter", put("", "reason", "field")),
        ("dead_letter", put(None, "reason", "field")),
        ("review", drop("note")),
        ("review", put(None, "note")),
        ("review", put({}, "verdicts")),
    ],
)
def test_allowed_variations_pass(
    message_type: MessageType, mutate: Callable[[dict[str, Any]], None]
) -> None:
    message = copy.deepcopy(example(message_type))
    mutate(message)
    assert violations(message_type, message) == []


def test_not_an_object_is_blamed_on_the_root() -> None:
    assert violations("post", ["hello"])[0].pointer == ""


def test_every_missing_field_is_named() -> None:
    found = violations("post", {})
    assert {v.pointer for v in found} == {f"/{name}" for name in POST_REQUIRED}


def test_check_raises_a_fatal_error_with_every_violation() -> None:
    with pytest.raises(MessageInvalid) as raised:
        check("post", {"schema_version": 1, "tenant": "acme"})
    error = raised.value
    assert isinstance(error, FatalError)
    assert error.message_type == "post"
    assert {v.pointer for v in error.violations} == {"/post_id", "/text"}
    assert "/post_id" in str(error) or "/text" in str(error)


def test_messages_stay_short_for_huge_values() -> None:
    message = example("post") | {"post_id": "x" * 1_000_000}
    violation = first_violation("post", message)
    assert violation is not None
    assert violation.pointer == "/post_id"
    assert len(violation.message) <= 300


def test_pattern_messages_quote_the_shipped_pattern() -> None:
    violation = first_violation("post", example("post") | {"tenant": "a b"})
    assert violation is not None
    assert "^[A-Za-z0-9._-]+$" in violation.message


def test_formats_that_cannot_be_checked_are_refused() -> None:
    # jsonschema skips a format whose checker is missing; we must fail instead (rfc3339-validator).
    with pytest.raises(FatalError, match="date-time"):
        _require_format_checks(schema("post"), FormatChecker(formats=()))


def test_unknown_message_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown message type"):
        validator("tweet")  # type: ignore[arg-type]


# --- The fast path agrees with jsonschema -------------------------------------------------------

ODD_VALUES: list[Any] = [
    *(None, True, False, 0, 1, -1, 1.0, 1.5, 2, -0.5, "", "x", "acme\n", "A" * 300),
    *([], ["a"], ["a", "a"], ["a", 1], [1, 1.0], {}, {"a": 1}, {"a": "b"}, {"": "b"}),
    *("2025-03-14T09:26:53Z", "2025-13-01T00:00:00Z", "0" * 32, "0" * 64, "f" * 64, "f" * 32),
    *("/text", "text", "AAAA", "AAA=", "not_json", "allow", "policy_threshold", "\x00"),
]


def variants(message: dict[str, Any]) -> Iterator[Any]:
    """The message with each field (nested ones too) dropped or replaced by odd values."""
    yield message
    yield {**message, "unexpected": 1}
    for name, value in message.items():
        yield {k: v for k, v in message.items() if k != name}
        for odd in ODD_VALUES:
            yield {**message, name: odd}
        if isinstance(value, dict) and value:
            for inner in variants(value):
                yield {**message, name: inner}


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_fast_path_accepts_the_example(message_type: MessageType) -> None:
    assert _accepts(message_type, example(message_type))


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_fast_path_never_accepts_what_jsonschema_rejects(message_type: MessageType) -> None:
    plain = shipped_validator(message_type)
    python_dialect = validator(message_type)
    wrong = []
    for message in variants(example(message_type)):
        accepted = violations(message_type, message) == []
        expected = python_dialect.is_valid(message)
        if accepted != expected:
            wrong.append(message)
        # The shipped schema only differs from ours on a final newline ("$" in Python).
        if plain.is_valid(message) != expected:
            assert "acme\n" in json.dumps(message).replace("\\n", "\n")
    assert wrong == []
