"""One field of the output schemas, checked on its own where its value enters the worker.

Some fields of every decision come from configuration (a pack's id and version, the model's
name) or from a backend's report (the cascade stage, the model that stood in): a value their
schema refuses would make every message that carries it invalid. Such values are checked once,
when they are loaded or reported, against the constraints read from the shipped schema files
(``topics/schemas``), so the numbers live there and nowhere else.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from modfleet.contracts.schemas import MessageType, _anchor_end, schema

# The messages that carry a pack's and a model's fields (policy_version, model_id, stage, ...).
CARRIERS: tuple[MessageType, ...] = ("decision", "escalation")


@dataclass(frozen=True)
class FieldRule:
    """The string constraints of one property of one message type."""

    message_type: MessageType
    name: str
    min_length: int | None
    max_length: int | None
    pattern: str | None  # as shipped (ECMA-262)
    enum: frozenset[str] | None

    @property
    def where(self) -> str:
        return f"{self.message_type}.v1's {self.name}"

    def problem(self, value: str) -> str | None:
        """What is wrong with ``value`` as this field, naming the field and its limit; None
        when the schema accepts it."""
        if self.enum is not None:
            if value in self.enum:
                return None
            allowed = ", ".join(sorted(self.enum))
            return f"{_shown(value)} is not one {self.where} allows ({allowed})"
        length = len(value)  # code points, as JSON Schema counts them
        if self.max_length is not None and length > self.max_length:
            return (
                f"is {length} characters; {self.where} allows at most {self.max_length} characters"
            )
        if self.min_length is not None and length < self.min_length:
            return f"is empty; {self.where} needs at least {self.min_length} character(s)"
        if self.pattern is not None and not _compiled(self.pattern).search(value):
            control = next((c for c in value if unicodedata.category(c) == "Cc"), None)
            why = f" (it holds the control character U+{ord(control):04X})" if control else ""
            return f"does not match {self.pattern!r}, as {self.where} must{why}"
        return None


def rule(message_type: MessageType, name: str) -> FieldRule:
    """The constraints of property ``name`` of ``message_type``, read from its schema."""
    return _rule(message_type, name)


def problem(name: str, value: str, carriers: tuple[MessageType, ...] = CARRIERS) -> str | None:
    """The first way ``value`` breaks property ``name`` of any message that carries it."""
    for message_type in carriers:
        found = rule(message_type, name).problem(value)
        if found is not None:
            return found
    return None


@cache
def _rule(message_type: MessageType, name: str) -> FieldRule:
    properties: Mapping[str, Any] = schema(message_type)["properties"]
    spec: Mapping[str, Any] = properties[name]
    enum = spec.get("enum")
    return FieldRule(
        message_type,
        name,
        spec.get("minLength"),
        spec.get("maxLength"),
        spec.get("pattern"),
        None if enum is None else frozenset(str(item) for item in enum),
    )


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # ECMA-262's "$" is the end of the string; Python's also matches before a final newline.
    return re.compile(_anchor_end(pattern))


def _shown(value: str) -> str:
    return ascii(value if len(value) <= 60 else value[:60] + "...")
