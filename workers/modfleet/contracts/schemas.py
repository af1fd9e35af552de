"""Validation of messages against the shipped JSON Schemas (``topics/schemas``).

This runs per post read and per message emitted. jsonschema's generic machinery costs 100-300 us
per message, more than the CPU model spends on a post, so each schema is also compiled once into
a plain predicate that accepts valid messages in a few microseconds. Only a message the predicate
rejects goes through jsonschema, which then has the last word and explains what is wrong.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from reprlib import Repr
from typing import Any, Literal, get_args

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match, relevance

from modfleet.errors import FatalError
from modfleet.resources import topics_dir

MessageType = Literal["post", "decision", "escalation", "dead_letter"]
MESSAGE_TYPES: tuple[MessageType, ...] = get_args(MessageType)

# Violation messages end up in dead letters and logs; jsonschema quotes the offending value, which
# can be a megabyte of post text.
_MAX_MESSAGE_CHARS = 300
_SHORT = Repr()
_SHORT.maxstring = _SHORT.maxother = 60

# Keywords whose values are data, not subschemas: a "pattern" key inside them is not a regex.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})

Predicate = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class SchemaViolation:
    """One way a message breaks its schema."""

    pointer: str  # JSON pointer (RFC 6901) of the offending field; "" is the whole message
    message: str


class MessageInvalid(FatalError):
    """A message does not match its schema; retrying will not change that."""

    def __init__(self, message_type: MessageType, found: Iterable[SchemaViolation]) -> None:
        self.message_type = message_type
        self.violations = tuple(found)
        first = self.violations[0] if self.violations else SchemaViolation("", "invalid")
        super().__init__(f"{message_type}.v1 invalid at {first.pointer or '/'}: {first.message}")


def schema_path(message_type: MessageType) -> Path:
    """The schema file of a message type."""
    return topics_dir() / "schemas" / f"{message_type}.v1.schema.json"


def schema(message_type: MessageType) -> Mapping[str, Any]:
    """The parsed schema of a message type, exactly as shipped."""
    return _schema(message_type)


def validator(message_type: MessageType) -> Draft202012Validator:
    """The validator of a message type, built once: formats are checked, not just annotated."""
    return _validator(message_type)


# The cached builders sit behind typed wrappers: functools.cache hides parameter types from mypy.
@cache
def _schema(message_type: MessageType) -> Mapping[str, Any]:
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"unknown message type {message_type!r}; expected one of {MESSAGE_TYPES}")
    loaded: dict[str, Any] = json.loads(schema_path(message_type).read_text(encoding="utf-8"))
    return loaded


@cache
def _validator(message_type: MessageType) -> Draft202012Validator:
    shipped = schema(message_type)
    Draft202012Validator.check_schema(shipped)
    checker = FormatChecker()
    _require_format_checks(shipped, checker)
    return Draft202012Validator(_python_regex_dialect(shipped), format_checker=checker)


def violations(message_type: MessageType, instance: object) -> list[SchemaViolation]:
    """Every violation, the most relevant first (the first is jsonschema's best match)."""
    if _accepts(message_type)(instance):
        return []
    errors = list(validator(message_type).iter_errors(instance))
    # Stable descending sort keeps max()'s pick, i.e. best_match's, in front.
    errors.sort(key=relevance, reverse=True)
    return [_violation(_deepest(error)) for error in errors]


def first_violation(message_type: MessageType, instance: object) -> SchemaViolation | None:
    """The most relevant violation, or None for a valid message."""
    if _accepts(message_type)(instance):
        return None
    best = best_match(validator(message_type).iter_errors(instance))
    return None if best is None else _violation(best)


def check(message_type: MessageType, instance: object) -> None:
    """Raise MessageInvalid unless ``instance`` matches the schema of ``message_type``."""
    found = violations(message_type, instance)
    if found:
        raise MessageInvalid(message_type, found)


# --- Reporting --------------------------------------------------------------------------------


def _deepest(error: ValidationError) -> ValidationError:
    # For anyOf/oneOf failures best_match descends into the branch that came closest.
    return best_match([error]) if error.context else error


def _violation(error: ValidationError) -> SchemaViolation:
    message = error.message
    if error.validator == "pattern":
        # Quote the shipped (ECMA-262) pattern, not our Python rewrite of it.
        shipped = str(error.validator_value).removesuffix(r"\Z") + "$"
        message = f"{_SHORT.repr(error.instance)} does not match {shipped!r}"
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 1] + "…"
    return SchemaViolation(_pointer(error), message)


def _pointer(error: ValidationError) -> str:
    """The field to blame: for a missing or unexpected property, that property, not its parent."""
    parts: list[object] = list(error.absolute_path)
    named = _named_property(error)
    if named is not None:
        parts.append(named)
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _named_property(error: ValidationError) -> str | None:
    instance = error.instance
    if not isinstance(instance, Mapping):
        return None
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [str(name) for name in error.validator_value if name not in instance]
        # jsonschema reports each missing name in its own error; its message is the only link.
        exact = [name for name in missing if error.message == f"{name!r} is a required property"]
        return next(iter(exact or missing), None)
    if error.validator == "additionalProperties" and error.validator_value is False:
        declared = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        return next((str(key) for key in instance if key not in declared), None)
    return None


# --- Loading ----------------------------------------------------------------------------------


def _require_format_checks(shipped: Mapping[str, Any], checker: FormatChecker) -> None:
    # FormatChecker silently passes formats whose optional checker is not installed (date-time
    # needs rfc3339-validator); a contract that is checked only sometimes is not one.
    unchecked = set(_keyword_values(shipped, "format")) - set(checker.checkers)
    if unchecked:
        raise FatalError(
            f"cannot check formats {sorted(unchecked)}: install modfleet's dependencies "
            "(rfc3339-validator checks date-time)"
        )


def _python_regex_dialect(node: Any) -> Any:
    """The schema with each pattern's final ``$`` made ``\\Z``.

    Schema patterns are ECMA-262, where ``$`` matches only at the end of the string; Python's also
    matches before a final newline, which would let "acme\\n" pass as a tenant here and fail in
    every other language. The shipped files stay pure ECMA-262.
    """
    if isinstance(node, list):
        return [_python_regex_dialect(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "pattern" and isinstance(value, str):
            out[key] = _anchor_end(value)
        elif key in _DATA_KEYWORDS:
            out[key] = value
        else:
            out[key] = _python_regex_dialect(value)
    return out


def _anchor_end(pattern: str) -> str:
    if not pattern.endswith("$"):
        return pattern
    body = pattern[:-1]
    backslashes = len(body) - len(body.rstrip("\\"))
    # An odd run of backslashes escapes the "$": it is a literal dollar, not an anchor.
    return pattern if backslashes % 2 else body + r"\Z"


def _keyword_values(node: Any, keyword: str) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _keyword_values(item, keyword)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key == keyword and isinstance(value, str):
                yield value
            elif key not in _DATA_KEYWORDS:
                yield from _keyword_values(value, keyword)


# --- Fast acceptance --------------------------------------------------------------------------
#
# The predicate must never accept what jsonschema rejects; rejecting something valid only costs
# a trip through jsonschema. Each keyword below mirrors jsonschema's Draft 2020-12 semantics
# (same type tests, same comparisons). A schema using any other keyword gets no fast path.

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default", "deprecated"}
    | {"readOnly", "writeOnly", "contentEncoding", "contentMediaType"}
)


class _Unsupported(Exception):
    """The schema uses a keyword the fast path does not mirror."""


def _reject_all(instance: Any) -> bool:
    return False


@cache
def _accepts(message_type: MessageType) -> Predicate:
    checker = validator(message_type).format_checker or FormatChecker()
    try:
        return _compile(_python_regex_dialect(schema(message_type)), checker)
    except _Unsupported:
        return _reject_all  # everything goes through jsonschema: slow but right


def _compile(node: Any, checker: FormatChecker) -> Predicate:
    if not isinstance(node, Mapping):
        raise _Unsupported(f"boolean or odd subschema {node!r}")
    checks = [
        _keyword(keyword, value, node, checker)
        for keyword, value in sorted(node.items(), key=lambda item: item[0] != "type")
        if keyword not in _ANNOTATIONS
    ]

    if len(checks) == 1:
        return checks[0]

    def accepts(instance: Any) -> bool:
        # A plain loop: all() over a generator costs twice as much, and this is the inner loop.
        for check_one in checks:  # noqa: SIM110
            if not check_one(instance):
                return False
        return True

    return accepts


def _is_number(x: Any) -> bool:
    # The exact-type test settles JSON's numbers without the slow ABC isinstance.
    return type(x) in (int, float) or (isinstance(x, numbers.Number) and not isinstance(x, bool))


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPES: dict[str, Predicate] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "number": _is_number,
    "integer": _is_integer,
}


def _keyword(
    keyword: str, value: Any, node: Mapping[str, Any], checker: FormatChecker
) -> Predicate:
    compile_keyword = _KEYWORDS.get(keyword)
    if compile_keyword is None:
        raise _Unsupported(keyword)
    return compile_keyword(value, node, checker)


def _type(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    tests = [_TYPES[name] for name in ([value] if isinstance(value, str) else value)]
    return tests[0] if len(tests) == 1 else lambda x: any(test(x) for test in tests)


def _properties(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    compiled = [(name, _compile(sub, checker)) for name, sub in value.items()]

    def accepts(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name, accept in compiled:  # noqa: SIM110 - see _compile
            if name in x and not accept(x[name]):
                return False
        return True

    return accepts


def _additional(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    if "patternProperties" in node:
        raise _Unsupported("patternProperties")
    declared = frozenset(node.get("properties", ()))
    if value is False:
        return lambda x: not isinstance(x, dict) or x.keys() <= declared
    accept = _compile(value, checker)
    return lambda x: (
        not isinstance(x, dict) or all(accept(v) for k, v in x.items() if k not in declared)
    )


def _required(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    names = frozenset(value)
    return lambda x: not isinstance(x, dict) or names <= x.keys()


def _property_names(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    accept = _compile(value, checker)
    return lambda x: not isinstance(x, dict) or all(accept(k) for k in x)


def _max_properties(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    return lambda x: not isinstance(x, dict) or len(x) <= value


def _items(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    if "prefixItems" in node:
        raise _Unsupported("prefixItems")
    accept = _compile(value, checker)
    return lambda x: not isinstance(x, list) or all(accept(item) for item in x)


def _unique_items(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    if value is not True:
        return lambda x: True
    # Only all-string arrays are judged here; anything else is left to jsonschema.
    return lambda x: (
        not isinstance(x, list)
        or (all(isinstance(item, str) for item in x) and len(set(x)) == len(x))
    )


def _min_length(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    return lambda x: not isinstance(x, str) or len(x) >= value


def _max_length(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    return lambda x: not isinstance(x, str) or len(x) <= value


def _pattern(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    search = re.compile(value).search
    return lambda x: not isinstance(x, str) or search(x) is not None


def _format(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    return lambda x: checker.conforms(x, value)


def _minimum(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    return lambda x: not _is_number(x) or not x < value


def _maximum(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    return lambda x: not _is_number(x) or not x > value


def _const(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    return _enum([value], node, checker)


def _enum(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    # Strings and null compare exactly as jsonschema's equal() does; so do plain numbers, where
    # bool must not pass for 0 or 1. Other constants are not mirrored.
    if not all(v is None or isinstance(v, str) or _is_plain_number(v) for v in value):
        raise _Unsupported("enum or const of containers or booleans")
    strings = frozenset(v for v in value if isinstance(v, str))
    plain = [v for v in value if _is_plain_number(v)]
    allows_null = None in value
    return lambda x: (
        (isinstance(x, str) and x in strings)
        or (x is None and allows_null)
        or (_is_plain_number(x) and x in plain)
    )


def _is_plain_number(x: Any) -> bool:
    return type(x) in (int, float)


def _not(value: Any, node: Mapping[str, Any], checker: FormatChecker) -> Predicate:
    # Negation turns an over-strict inner check into an over-lenient one, so only keywords that
    # are exact here (const and enum of strings or null) may sit inside "not".
    if not isinstance(value, Mapping) or not set(value) - _ANNOTATIONS <= {"const", "enum"}:
        raise _Unsupported("not")
    constants = [value["const"]] if "const" in value else []
    if not all(v is None or isinstance(v, str) for v in [*constants, *value.get("enum", [])]):
        raise _Unsupported("not over non-string constants")
    accept = _compile(value, checker)
    return lambda x: not accept(x)


_KEYWORDS: dict[str, Callable[[Any, Mapping[str, Any], FormatChecker], Predicate]] = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "propertyNames": _property_names,
    "maxProperties": _max_properties,
    "items": _items,
    "uniqueItems": _unique_items,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "format": _format,
    "minimum": _minimum,
    "maximum": _maximum,
    "const": _const,
    "enum": _enum,
    "not": _not,
}
