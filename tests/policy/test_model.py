from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modfleet.errors import FatalError
from modfleet.policy import SEVERITY, Judgement, Policy

Make = Callable[..., dict[str, Any]]


def test_severity_orders_actions_from_allow_to_remove() -> None:
    assert sorted(SEVERITY, key=SEVERITY.__getitem__) == [
        "allow",
        "label",
        "restrict",
        "escalate",
        "remove",
    ]


def test_category_score_is_the_max_of_its_labels_and_unscored_categories_are_absent(
    pack: Policy,
) -> None:
    scores = pack.category_scores({"offensive": 0.4, "hate": 0.7, "unrelated": 0.99})
    assert scores == {"harassment": 0.4, "hate": 0.7}


def test_category_scores_are_clamped_to_the_unit_interval(pack: Policy) -> None:
    assert pack.category_scores({"offensive": 1.7}) == {"harassment": 1.0, "hate": 1.0}
    assert pack.category_scores({"offensive": -0.2}) == {"harassment": 0.0, "hate": 0.0}
    assert pack.category_scores({}) == {}


def test_a_score_is_decided_as_the_decision_shows_it(pack: Policy) -> None:
    # Scores are kept to six places before the thresholds see them: a decision never shows 0.6
    # beside "allow" under a 0.6 threshold because the model said 0.59999996.
    from modfleet.inference import Verdict

    scores = Verdict({"offensive": 0.59999996}).policy_scores(pack)
    assert scores["harassment"] == 0.6
    assert Verdict({"offensive": 0.1234567891}).policy_scores(pack)["harassment"] == 0.123457
    assert pack.decide(scores).per_category["harassment"] == "escalate"  # its 0.6 threshold
    llm = Verdict({}, categories={"spam": 0.30000000004})
    assert llm.policy_scores(pack) == {"spam": 0.3}


def test_nan_score_is_refused_rather_than_allowed(pack: Policy) -> None:
    with pytest.raises(FatalError, match="NaN"):
        pack.category_scores({"offensive": float("nan")})
    with pytest.raises(FatalError, match="NaN"):
        pack.decide({"spam": float("nan")})


def test_decide_takes_the_most_severe_action_and_labels_every_non_allow_category(
    pack: Policy,
) -> None:
    judgement = pack.decide({"harassment": 0.65, "hate": 0.1, "spam": 0.75})
    assert judgement == Judgement(
        action="escalate",
        labels=("harassment", "spam"),
        per_category={"harassment": "escalate", "hate": "allow", "spam": "restrict"},
    )


@pytest.mark.parametrize(
    ("score", "action"),
    [
        (0.0, "allow"),
        (0.29, "allow"),
        (0.3, "label"),
        (0.6, "escalate"),
        (0.9, "remove"),
        (1.0, "remove"),
    ],
)
def test_first_threshold_reached_gives_the_action(pack: Policy, score: float, action: str) -> None:
    assert pack.decide({"harassment": score}).per_category["harassment"] == action


def test_decide_with_nothing_scored_allows(pack: Policy) -> None:
    assert pack.decide({}) == Judgement(action="allow", labels=(), per_category={})


def test_decide_refuses_categories_the_pack_does_not_define(pack: Policy) -> None:
    with pytest.raises(FatalError, match="violnce"):
        pack.decide({"violnce": 0.99})


def test_judgement_is_frozen(pack: Policy) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        pack.decide({}).action = "remove"  # type: ignore[misc]


def _errors(data: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        Policy.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_thresholds_must_descend(category: Make, pack_data: Make) -> None:
    bad = category(
        thresholds=[{"min_score": 0.3, "action": "label"}, {"min_score": 0.6, "action": "remove"}]
    )
    [(loc, msg)] = _errors(pack_data(harassment=bad))
    assert loc == ("categories", "harassment", "thresholds")
    assert "highest min_score to the lowest" in msg


def test_allow_is_not_a_threshold_action(category: Make, pack_data: Make) -> None:
    bad = category(thresholds=[{"min_score": 0.3, "action": "allow"}])
    [(loc, msg)] = _errors(pack_data(harassment=bad))
    assert loc == ("categories", "harassment", "thresholds", 0, "action")
    assert "falls below" in msg


@pytest.mark.parametrize(
    ("field", "value"),
    [("violates", []), ("does_not_violate", []), ("examples", []), ("thresholds", [])],
)
def test_lists_that_define_a_category_need_at_least_one_item(
    category: Make, pack_data: Make, field: str, value: Any
) -> None:
    [(loc, _)] = _errors(pack_data(harassment=category(**{field: value})))
    assert loc == ("categories", "harassment", field)


@pytest.mark.parametrize("version", ["2026.11.0", "1.2.3", "1.2", "1.2.3-rc1"])
def test_accepted_versions(pack_data: Make, version: str) -> None:
    assert Policy.model_validate(pack_data() | {"version": version}).version == version


@pytest.mark.parametrize("version", ["v1.2", "1", "latest", "1.2.3-"])
def test_rejected_versions(pack_data: Make, version: str) -> None:
    [(loc, _)] = _errors(pack_data() | {"version": version})
    assert loc == ("version",)


@pytest.mark.parametrize("bad_id", ["Default", "-x", "", "a" * 65, "has space"])
def test_ids_and_category_names_follow_one_rule(
    category: Make, pack_data: Make, bad_id: str
) -> None:
    assert _errors(pack_data() | {"id": bad_id})[0][0] == ("id",)
    assert _errors(pack_data(**{bad_id: category()}))[0][0] == ("categories", bad_id, "[key]")


def test_policy_is_frozen_and_forbids_unknown_fields(pack: Policy, pack_data: Make) -> None:
    with pytest.raises(ValidationError):
        pack.id = "other"  # type: ignore[misc]
    [(loc, _)] = _errors(pack_data() | {"colour": "blue"})
    assert loc == ("colour",)


def test_defaults(pack: Policy) -> None:
    assert pack.model.backend == "embedded"
    assert pack.model.reasoning_effort == "low"
    assert pack.limits.max_text_chars == 20_000


def test_prompt_text_is_deterministic_and_holds_the_policy(pack: Policy) -> None:
    text = pack.prompt_text()
    again = Policy.model_validate(pack.model_dump()).prompt_text()
    assert text == again == pack.prompt_text()
    assert text.startswith("# Test pack\n")
    for name, cat in pack.categories.items():
        assert f"## {cat.title} (`{name}`)" in text
        for item in (*cat.violates, *cat.does_not_violate):
            assert f"- {item}\n" in text
    assert '- "you are worthless": VIOLATES. Direct insult.\n' in text
    assert '- "this plan is bad": DOES NOT VIOLATE\n' in text
    assert "- **Target**: An identifiable person.\n" in text
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings[:5] == [
        "### Definition",
        "### Key Terms",
        "### VIOLATES",
        "### DOES NOT VIOLATE",
        "### Examples",
    ]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["harassment", "hate", "spam"]),
            st.sampled_from([0.0, 0.3, 0.59, 0.6, 0.7, 0.75, 0.9, 1.0]) | st.floats(0, 1),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_judgements_of_a_pack_are_each_posts_own(
    pack: Policy, posts: list[dict[str, float]]
) -> None:
    # decide() builds each outcome once and shares it: every post must still get exactly the
    # judgement its own scores give, in any order, however many posts came before.
    for scores in posts:
        judgement = pack.decide(scores)
        per_category = {}
        for name, score in scores.items():
            passed = [t for t in pack.categories[name].thresholds if score >= t.min_score]
            per_category[name] = passed[0].action if passed else "allow"
        worst = max(per_category.values(), key=SEVERITY.__getitem__, default="allow")
        assert judgement.per_category == per_category
        assert judgement.action == worst
        assert judgement.labels == tuple(sorted(n for n, a in per_category.items() if a != "allow"))
