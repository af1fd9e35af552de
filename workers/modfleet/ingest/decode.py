"""Bytes off the posts topic -> a Post, or a Rejection that names what is wrong and where."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import field
from types import MappingProxyType
from typing import Any

import orjson

from modfleet.carrier import carrier
from modfleet.contracts.schemas import fast_violation
from modfleet.normalise import writable


@carrier
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


@carrier
class Post:
    post_id: str
    tenant: str
    text: str
    author_id: str | None = None
    created_at: str | None = None
    lang: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@carrier
class Rejection:
    """Why a record cannot be decided.

    ``field`` is a JSON pointer ("" is the whole document), or None when the record is not JSON.
    """

    code: str
    message: str
    field: str | None = None
    post_id: str | None = None
    tenant: str | None = None


@carrier
class UnreadRecord(Record):
    """An offset whose record was never read, to be dead-lettered with ``why``.

    Made only by the consumer's fetch path, for each offset of a batch it refused to inflate
    (stream/inflate.py), never from a record's bytes: no producer can have one made for a post
    that is not its own. Key and value are None, as nothing of the record was read."""

    why: Rejection = field(kw_only=True)


DEFAULT_MAX_POST_BYTES = 4 * 1024 * 1024
# A valid post is an object of scalars with one object of strings (attributes): depth 2 and at
# most 8 + 64 members. Anything much beyond that is rejected before the schema validator sees it,
# so that the cost of saying no stays small whatever the shape.
_MAX_DEPTH = 3
_MAX_MEMBERS = 256
# Where a key ends: its closing quote, optional whitespace, a colon. Each key of the raw text
# ends so once (strings may add more), so fewer parsed keys than these means a possible duplicate.
_KEY_END = re.compile(rb'"[ \t\r\n]*:')


def decode(record: Record, max_bytes: int = DEFAULT_MAX_POST_BYTES) -> Post | Rejection:
    value = record.value
    if value is None:
        if type(record) is UnreadRecord:
            return record.why
        return Rejection("not_json", "record has no value (a tombstone?)")
    if len(value) > max_bytes:
        return Rejection(
            "too_large", f"value is {len(value):,} bytes; at most {max_bytes:,} are read", field=""
        )
    try:
        # orjson reads the bytes and checks their UTF-8 itself: no decoded copy for valid posts.
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        data = _with_lone_surrogates(value, exc)
        if data is None:
            return _unreadable(value, exc)
    shape = _shape(data)
    if isinstance(shape, Rejection):
        return _named(shape, data)
    # Every key ends in a colon, so a value with no more colons than parsed keys has no
    # duplicate: most posts skip the regex.
    if value.count(b":") > shape and len(_KEY_END.findall(value)) > shape:
        duplicate = _duplicate_key(value.decode("utf-8"))
        if duplicate is not None:
            return _named(duplicate, data)
    violation = fast_violation("post", data)
    if violation is not None:
        return _named(Rejection("schema_invalid", violation.message, violation.pointer), data)
    return _post(data)


def _with_lone_surrogates(value: bytes, exc: orjson.JSONDecodeError) -> object | None:
    """The document, if its one fault for orjson is a lone surrogate escape ("\\ud83d"), with
    U+FFFD in its place; else None.

    JSON allows such an escape (RFC 8259), and JavaScript writes one when a cut at N UTF-16
    units splits an emoji: a post must not go unmoderated for it. Only this path pays for the
    json module, and only a document of a post's shape (bounded depth and members) is walked."""
    if "surrogate" not in exc.msg:
        return None
    try:
        data: object = json.loads(value.decode("utf-8"))
    except (ValueError, RecursionError):  # not JSON after all, or nested past the stack
        return None
    if isinstance(_shape(data), Rejection):
        return data  # rejected for its shape as any other document
    return _replaced(data)


def _replaced(data: object) -> object:
    if isinstance(data, str):
        return writable(data)
    if isinstance(data, dict):
        return {_replaced(key): _replaced(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_replaced(value) for value in data]
    return data


def _unreadable(value: bytes, exc: orjson.JSONDecodeError) -> Rejection:
    """Why bytes orjson refused are not a post: not UTF-8 (where), else not JSON (where)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejection("not_utf8", f"byte {bad.start} is not valid UTF-8: {bad.reason}")
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as again:  # located in characters, as a reader counts them
        return Rejection(
            "not_json", f"not JSON at line {again.lineno} column {again.colno}: {again.msg}"
        )
    return Rejection("not_json", f"not JSON: {exc.msg}")  # pragma: no cover - same verdict


def _shape(data: object) -> int | Rejection:
    """The number of object keys in ``data``, or why its shape cannot be a post's."""
    if type(data) is dict and len(data) <= _MAX_MEMBERS // 2:
        # A post's usual shape (scalars, one object of scalars) is counted without the walk.
        keys = len(data)
        for value in data.values():
            kind = type(value)
            if kind is dict and len(value) <= _MAX_MEMBERS // 2:
                if any(type(v) is dict or type(v) is list for v in value.values()):
                    return _walked(data)
                keys += len(value)
            elif kind is dict or kind is list:
                return _walked(data)
        return keys
    return _walked(data)


def _walked(data: object) -> int | Rejection:
    keys = members = 0
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
            keys += len(node)
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= _MAX_DEPTH:
            why = f"nested deeper than {_MAX_DEPTH} levels"
            return Rejection("schema_invalid", why, _pointer_to(data, node))
        members += len(node)
        if members > _MAX_MEMBERS:
            why = f"{len(node):,} members here; a post has at most {_MAX_MEMBERS} in all"
            return Rejection("schema_invalid", why, _pointer_to(data, node))
        stack.extend((child, depth + 1) for child in children)
    return keys


def _pointer_to(root: object, target: object) -> str:
    """The JSON pointer of ``target`` inside ``root``: built only for a rejection, so that
    valid posts never pay for pointer strings."""
    stack: list[tuple[object, str, int]] = [(root, "", 0)]
    while stack:
        node, pointer, depth = stack.pop()
        if node is target:
            return pointer
        if depth > _MAX_DEPTH:
            continue
        if isinstance(node, dict):
            stack.extend((v, f"{pointer}/{_escape(str(k))}", depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{pointer}/{i}", depth + 1) for i, v in enumerate(node))
    return ""


def _duplicate_key(text: str) -> Rejection | None:
    """Duplicate keys: parsers differ on which value wins, so a platform could show one text
    and have another moderated. Only called when the cheap count says there may be one."""
    # The hook sees an object's members but not where the object sits: note the object, and
    # find its pointer in the parsed document afterwards.
    found: list[tuple[dict[str, Any], str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if not found and len(obj) < len(items):
            seen: set[str] = set()
            for name, _ in items:
                if name in seen:
                    found.append((obj, name))
                    break
                seen.add(name)
        return obj

    root = json.loads(text, object_pairs_hook=pairs)
    if not found:
        return None
    obj, name = found[0]
    pointer = f"{_pointer_to(root, obj)}/{_escape(name)}"
    return Rejection("schema_invalid", f"duplicate key {name[:128]!r}", pointer)


def _named(why: Rejection, data: object) -> Rejection:
    """The rejection with the post id and tenant, where the document has readable ones."""
    known = data if isinstance(data, dict) else {}
    return Rejection(
        why.code,
        # Validators quote the offending value, which may be megabytes of hostile input.
        clip(why.message),
        field=why.field,
        post_id=_str_or_none(known.get("post_id")),
        tenant=_str_or_none(known.get("tenant")),
    )


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _post(data: dict[str, Any]) -> Post:
    get = data.get
    attributes = get("attributes") or _NO_ATTRIBUTES
    return Post(
        data["post_id"],
        data["tenant"],
        data["text"],
        get("author_id"),
        get("created_at"),
        get("lang"),
        attributes,
    )


_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})  # shared: a post's are read-only


def clip(message: str, limit: int = 300) -> str:
    """At most ``limit`` characters of a message that may quote hostile input."""
    return message if len(message) <= limit else message[:limit] + "... (cut)"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) <= 256 else None
