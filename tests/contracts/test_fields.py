"""Single fields of the output schemas, checked where their values enter the worker."""

from __future__ import annotations

import pytest

from modfleet.contracts.fields import problem, rule
from modfleet.contracts.schemas import schema


def test_the_constraints_are_the_shipped_schemas() -> None:
    shipped = schema("decision")["properties"]["model_id"]
    found = rule("decision", "model_id")
    assert (found.min_length, found.max_length, found.pattern) == (
        shipped["minLength"],
        shipped["maxLength"],
        shipped["pattern"],
    )
    assert rule("escalation", "stage").enum == frozenset(
        schema("escalation")["properties"]["stage"]["enum"]
    )


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        (
            "policy_version",
            "1" * 65,
            "is 65 characters; decision.v1's policy_version allows at most 64",
        ),
        ("model_id", "", "is empty"),
        ("model_id", "a\u0085b", "control character U+0085"),
        ("model_id", "a\n", "control character U+000A"),  # not "$ before a final newline"
        ("stage", "gpu", "'gpu' is not one decision.v1's stage allows (embedded, llm)"),
        ("fallback_from", "", "is empty"),
    ],
)
def test_a_value_the_schema_refuses_is_named_with_its_limit(
    name: str, value: str, words: str
) -> None:
    found = problem(name, value)
    assert found is not None
    assert words in found


@pytest.mark.parametrize(
    ("name", "value"),
    [("policy_version", "1" * 64), ("model_id", "m" * 256), ("stage", "llm"), ("policy_id", "a.b")],
)
def test_a_value_the_schema_accepts_has_no_problem(name: str, value: str) -> None:
    assert problem(name, value) is None
