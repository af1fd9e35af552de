"""Bytes off the posts topic -> a Post, or a Rejection that names what is wrong and where."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from modfleet.contracts.schemas import first_violation


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed Kafka record, free of any client library's types."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None  # seconds since the epoch, as the broker stamped it
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Post:
    post_id: str
    tenant: str
    text: str
    author_id: str | None = None
    created_at: str | None = None
    lang: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record cannot be decided.

    ``field`` is a JSON pointer ("" is the whole document), or None when the record is not JSON.
    """

    code: str
    message: str
    field: str | None = None
    post_id: str | None = None
    tenant: str | None = None


def decode(record: Record) -> Post | Rejection:
    if record.value is None:
        return Rejection("not_json", "record has no value (a tombstone?)")
    try:
        text = record.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"byte {exc.start} is not valid UTF-8: {exc.reason}")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"not JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    violation = first_violation("post", data)
    if violation is not None:
        known = data if isinstance(data, dict) else {}
        return Rejection(
            "schema_invalid",
            # Validators quote the offending value, which may be megabytes of hostile input.
            _clip(violation.message),
            field=violation.pointer,
            post_id=_str_or_none(known.get("post_id")),
            tenant=_str_or_none(known.get("tenant")),
        )
    return _post(data)


def _post(data: dict[str, Any]) -> Post:
    return Post(
        post_id=data["post_id"],
        tenant=data["tenant"],
        text=data["text"],
        author_id=data.get("author_id"),
        created_at=data.get("created_at"),
        lang=data.get("lang"),
        attributes=data.get("attributes") or {},
    )


def _clip(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "... (cut)"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) <= 256 else None
