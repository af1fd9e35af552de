"""Rows of a replay source -> post.v1 records, or a bad row that says what is wrong.

A row is either raw JSON (a JSONL line, a record of another topic) or a mapping of column names
to values (CSV, Parquet). JSON already in post.v1 form is passed through byte for byte, so that a
replay of real traffic reaches the worker exactly as it was sent, malformed posts included: the
worker's dead-letters are then part of what the replay tests. Anything else is mapped field by
field under ``FieldMap``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from modfleet.settings import Settings

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Which column holds each post.v1 field; optional fields are copied when present.

    The defaults are post.v1's own names, so a CSV or Parquet file of post.v1 columns needs no
    flags.
    """

    id_field: str = "post_id"
    text_field: str = "text"
    tenant_field: str = "tenant"
    tenant: str = "replay"  # for rows without a tenant column or value
    author_field: str = "author_id"
    lang_field: str = "lang"
    created_at_field: str = "created_at"
    # A dead letter's original is replayed only when it was read from this topic: the topic
    # holds other consumers' dead letters too (invalid reviews), and a review's original, its
    # tenant and text the reviewer's, must never come back as a post.
    posts_topic: str = Settings.model_fields["posts_topic"].default


@dataclass(frozen=True, slots=True)
class PostRow:
    """A row that became one record for the posts topic."""

    where: str  # "line 12", "row 7", "topic[2]@1500": what the developer looks up
    value: bytes


@dataclass(frozen=True, slots=True)
class BadRow:
    where: str
    code: str  # invalid_json | not_an_object | missing_field | wrong_type | invalid_row | too_large
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.code}: {self.message}"


Row = PostRow | BadRow


def from_json(raw: bytes, where: str, fields: FieldMap) -> Row:
    """One JSON document: a post.v1 passes through, a dead-letter yields its original post."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return BadRow(where, "invalid_json", str(exc))
    if not isinstance(data, dict):
        return BadRow(where, "not_an_object", f"expected a JSON object, got {type(data).__name__}")
    if _is_dead_letter(data):
        return _dead_letter_original(data, where, fields)
    if "schema_version" in data:
        return PostRow(where, raw)
    return from_mapping(data, where, fields)


def from_mapping(row: dict[str, Any], where: str, fields: FieldMap) -> Row:
    """A row of named values (CSV, Parquet, JSON without schema_version) mapped to a post.v1."""
    post_id = _identifier(row.get(fields.id_field))
    if post_id is None:
        return _missing_or_wrong(row, fields.id_field, "a string or an integer", where)
    text = row.get(fields.text_field)
    # An empty cell is how CSV says "missing"; a post.v1 that means "" passes through instead.
    if not isinstance(text, str) or not text:
        return _missing_or_wrong(row, fields.text_field, "a string", where)
    tenant = _tenant(row.get(fields.tenant_field), fields)
    if tenant is None:
        return _missing_or_wrong(row, fields.tenant_field, "a string or an integer", where)
    post: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "post_id": post_id,
        "tenant": tenant,
        "text": text,
    }
    for name, column in (
        ("author_id", fields.author_field),
        ("lang", fields.lang_field),
        ("created_at", fields.created_at_field),
    ):
        value = _optional(row.get(column))
        if value is not None:
            post[name] = value
    try:
        return PostRow(where, orjson.dumps(post))
    except orjson.JSONEncodeError as exc:  # lone surrogates from undecodable CSV bytes
        return BadRow(where, "invalid_row", f"not encodable as UTF-8 JSON: {exc}")


def _identifier(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def _tenant(value: Any, fields: FieldMap) -> str | None:
    # The default fills only a missing tenant: a row's own tenant, a number included (a Parquet
    # tenant_id column), must never be replaced, or its post would be decided as another's.
    if value is None or value == "":
        return fields.tenant
    return _identifier(value)


def _optional(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        # Parquet timestamps arrive as datetimes; post.v1 wants RFC 3339, which needs an offset,
        # and a timestamp column without a time zone conventionally holds UTC.
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.isoformat().replace("+00:00", "Z")
    return str(value)


def _missing_or_wrong(row: dict[str, Any], column: str, wanted: str, where: str) -> BadRow:
    value = row.get(column)
    if value is None or value == "":
        return BadRow(where, "missing_field", f"no value in field {column!r}")
    return BadRow(where, "wrong_type", f"field {column!r} is {type(value).__name__}, not {wanted}")


def _is_dead_letter(data: dict[str, Any]) -> bool:
    return "original_b64" in data and "reason" in data


def _dead_letter_original(data: dict[str, Any], where: str, fields: FieldMap) -> Row:
    # Replaying the dead-letter topic after a fix sends each original post again.
    source = data.get("source")
    topic = source.get("topic") if isinstance(source, dict) else None
    if topic != fields.posts_topic:
        why = f"a dead letter of {topic!r}, not of the posts topic {fields.posts_topic!r}"
        return BadRow(where, "invalid_row", why)
    encoded = data.get("original_b64")
    if not isinstance(encoded, str) or data.get("original_truncated"):
        return BadRow(where, "invalid_row", "dead-letter without a whole original_b64")
    try:
        original = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        return BadRow(where, "invalid_row", f"original_b64 is not base64: {exc}")
    row = from_json(original, where, fields)
    if isinstance(row, BadRow):
        # An original that is not even a JSON object can only be replayed as it was.
        return PostRow(where, original)
    return row
