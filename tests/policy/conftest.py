"""Shared pieces of the policy tests: a small valid pack, built in code so each test can break it.

Helpers are handed out as fixtures rather than imported, so the tests do not depend on how pytest
puts test folders on sys.path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modfleet.policy import Policy


def _category(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": "Harassment",
        "definition": "Abuse aimed at a person.",
        "key_terms": {"Target": "An identifiable person."},
        "violates": ["Insults aimed at a person.", "Calls for a pile-on."],
        "does_not_violate": ["Criticism of public conduct."],
        "examples": [
            {"text": "you are worthless", "violates": True, "note": "Direct insult."},
            {"text": "this plan is bad", "violates": False},
        ],
        "model_labels": ["offensive"],
        "thresholds": [
            {"min_score": 0.9, "action": "remove"},
            {"min_score": 0.6, "action": "escalate"},
            {"min_score": 0.3, "action": "label"},
        ],
    }
    return fields | overrides


def _pack_data(**categories: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "test",
        "version": "1.0.0",
        "title": "Test pack",
        "description": "For tests.",
        "model": {"id": "alt-profanity-check"},
        "categories": categories or {"harassment": _category()},
    }


@pytest.fixture
def category() -> Callable[..., dict[str, Any]]:
    """A valid category as plain data; keyword arguments replace fields."""
    return _category


@pytest.fixture
def pack_data() -> Callable[..., dict[str, Any]]:
    """A valid pack as plain data; keyword arguments are its categories."""
    return _pack_data


@pytest.fixture
def pack() -> Policy:
    return Policy.model_validate(
        _pack_data(
            harassment=_category(),
            hate=_category(
                title="Hate",
                model_labels=["offensive", "hate"],
                thresholds=[{"min_score": 0.8, "action": "escalate"}],
            ),
            spam=_category(
                title="Spam",
                model_labels=[],
                thresholds=[
                    {"min_score": 0.7, "action": "restrict"},
                    {"min_score": 0.4, "action": "label"},
                ],
            ),
        )
    )
