"""A small pack for the cache tests, built in code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modfleet.policy import Policy


def small_pack(**overrides: Any) -> Policy:
    data: dict[str, Any] = {
        "id": "test",
        "version": "1.0.0",
        "title": "Test pack",
        "description": "For tests.",
        "model": {"id": "alt-profanity-check"},
        "categories": {
            "harassment": {
                "title": "Harassment",
                "definition": "Abuse aimed at a person.",
                "violates": ["Insults aimed at a person."],
                "does_not_violate": ["Criticism of public conduct."],
                "examples": [{"text": "you are worthless", "violates": True}],
                "model_labels": ["offensive"],
                "thresholds": [{"min_score": 0.6, "action": "remove"}],
            }
        },
    }
    return Policy.model_validate(data | overrides)


@pytest.fixture
def pack() -> Policy:
    return small_pack()


@pytest.fixture
def make_pack() -> Callable[..., Policy]:
    """The small pack with top-level fields replaced (handed out, not imported: see
    tests/policy/conftest.py)."""
    return small_pack
