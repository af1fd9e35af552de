"""A pack is identified by its content, and tenants are routed only where a pack says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from modfleet.cli import main
from modfleet.errors import FatalError
from modfleet.policy import Policy, PolicyInvalid
from modfleet.policy.load import check_policy
from modfleet.policy.packs import PolicySet, load_policy_set

Data = Callable[..., dict[str, Any]]


def digest(data: dict[str, Any]) -> str:
    return Policy.model_validate(data).digest


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_the_digest_ignores_layout_comments_and_what_does_not_decide(
    tmp_path: Path, pack_data: Data
) -> None:
    data = pack_data()
    plain = write(tmp_path / "plain.yaml", data)
    commented = tmp_path / "commented.yaml"
    commented.write_text(
        "# a comment the model never reads\n"
        + yaml.safe_dump(data, sort_keys=True, default_flow_style=True, width=60),
        encoding="utf-8",
    )
    first, second = (load_policy_set(p).default.digest for p in (plain, commented))
    assert first == second == digest(data)
    gated = data | {
        "gate": {"golden_set": "golden.jsonl", "baseline_f1": {"flagged": 0.5}},
        "tenants": ["acme"],
        "mode": "shadow",
    }
    assert digest(gated) == digest(data)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["categories"]["harassment"]["thresholds"][0].update(min_score=0.95),
        lambda d: d["categories"]["harassment"]["thresholds"][0].update(action="escalate"),
        lambda d: d["categories"]["harassment"]["examples"][0].update(text="you are useless"),
        lambda d: d["categories"]["harassment"].update(model_labels=["offensive", "toxic"]),
        lambda d: d["categories"]["harassment"].update(definition="Abuse of a person."),
        lambda d: d["model"].update(id="another-model"),
        lambda d: d["model"].update(backend="openai"),
        lambda d: d.update(limits={"max_text_chars": 500}),
        lambda d: d.update(description="For other tests."),
        lambda d: d.update(text={"format": "html"}),
    ],
    ids=[
        "threshold",
        "action",
        "example",
        "model-labels",
        "definition",
        "model-id",
        "backend",
        "limit",
        "description",
        "text-format",
    ],
)
def test_the_digest_changes_with_what_the_model_reads_or_what_decides(
    pack_data: Data, change: Callable[[dict[str, Any]], None]
) -> None:
    data = pack_data()
    changed = pack_data()
    change(changed)
    assert digest(changed) != digest(data)


def test_a_pack_that_names_the_plain_text_format_keeps_the_digest_it_had_without_it(
    pack_data: Data,
) -> None:
    # Packs written before the format existed keep their digests, and with them their cached
    # verdicts and their decisions' ids, across the upgrade.
    data = pack_data()
    assert digest(data | {"text": {"format": "plain"}}) == digest(data)


@pytest.mark.parametrize("text", [{"format": "markdown"}, {"format": "HTML"}, {"fmt": "html"}])
def test_a_text_format_the_worker_cannot_read_is_refused_where_it_is_written(
    tmp_path: Path, pack_data: Data, text: dict[str, str]
) -> None:
    problems = check_policy(write(tmp_path / "pack.yaml", pack_data() | {"text": text}))
    assert problems, text
    assert all(p.field.startswith("text") for p in problems), problems


def test_the_digest_follows_the_category_order_the_model_reads(
    pack_data: Data, category: Data
) -> None:
    one = pack_data(harassment=category(), spam=category(title="Spam"))
    other = pack_data(spam=category(title="Spam"), harassment=category())
    assert digest(one) != digest(other)


def test_an_edited_copy_gets_its_own_digest(pack: Policy) -> None:
    edited = pack.model_copy(update={"description": "Edited in code."})
    assert edited.digest == digest(edited.model_dump()) != pack.digest


def test_two_packs_with_one_name_and_different_content_are_refused_naming_both(
    tmp_path: Path, pack_data: Data
) -> None:
    lenient = pack_data()
    strict = pack_data()
    strict["categories"]["harassment"]["thresholds"][0]["min_score"] = 0.75
    strict["tenants"] = ["tenant-a"]
    write(tmp_path / "b-default.yaml", lenient)
    write(tmp_path / "a-strict.yaml", strict)
    with pytest.raises(PolicyInvalid) as raised:
        load_policy_set(tmp_path)
    message = str(raised.value)
    assert "test@1.0.0" in message
    assert str(tmp_path / "a-strict.yaml") in message
    assert str(tmp_path / "b-default.yaml") in message
    assert "different content" in message

    result = CliRunner().invoke(main, ["policy", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert str(tmp_path / "a-strict.yaml") in result.stderr
    assert str(tmp_path / "b-default.yaml") in result.stderr


def test_the_same_pack_for_two_tenants_under_one_name_is_fine(
    tmp_path: Path, pack_data: Data
) -> None:
    write(tmp_path / "default.yaml", pack_data())
    write(tmp_path / "acme.yaml", pack_data() | {"tenants": ["acme"]})
    packs = load_policy_set(tmp_path)
    assert packs.live_for("acme").digest == packs.default.digest


def test_a_pack_listing_tenants_never_governs_other_tenants(
    tmp_path: Path, pack_data: Data
) -> None:
    write(tmp_path / "acme.yaml", pack_data() | {"id": "acme", "tenants": ["acme"]})
    with pytest.raises(PolicyInvalid) as raised:
        load_policy_set(tmp_path)
    assert "exactly one live pack must have no tenants" in str(raised.value)
    assert "acme.yaml govern(s) only the tenants listed" in str(raised.value)
    result = CliRunner().invoke(main, ["policy", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "exactly one live pack must have no tenants" in result.stderr

    write(tmp_path / "default.yaml", pack_data() | {"id": "everyone"})
    packs = load_policy_set(tmp_path)
    assert CliRunner().invoke(main, ["policy", "validate", str(tmp_path)]).exit_code == 0
    assert packs.live_for("acme").id == "acme"
    assert packs.live_for("globex").id == "everyone"


def test_two_default_packs_are_refused(tmp_path: Path, pack_data: Data) -> None:
    write(tmp_path / "one.yaml", pack_data() | {"id": "one"})
    write(tmp_path / "two.yaml", pack_data() | {"id": "two"})
    with pytest.raises(PolicyInvalid) as raised:
        load_policy_set(tmp_path)
    assert "found one.yaml, two.yaml" in str(raised.value)


def test_a_single_pack_with_tenants_cannot_stand_alone(pack: Policy) -> None:
    with pytest.raises(FatalError, match="lists tenants"):
        PolicySet.single(pack.model_copy(update={"tenants": ["acme"]}))


def test_a_bad_tenant_is_told_the_tenant_rule_not_a_pack_names(
    tmp_path: Path, pack_data: Data
) -> None:
    path = write(tmp_path / "acme.yaml", pack_data() | {"tenants": ["acme\n"]})
    [problem] = check_policy(path)
    assert problem.field == "tenants[0]"
    assert "invalid tenant" in problem.message
    assert "'.'" in problem.message  # a tenant may hold dots, which a pack name may not
