from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from modfleet.contracts.schemas import schema
from modfleet.errors import FatalError
from modfleet.policy import PolicyInvalid, Problem, check_policy, load_policy
from modfleet.resources import default_policy_path

BROKEN = textwrap.dedent(
    """\
    id: broken
    version: 2026.11.0
    title: Broken pack
    description: Several mistakes at once.
    model:
      id: alt-profanity-check
      colour: blue
    categories:
      harassment:
        title: Harassment
        violates: [Insults.]
        does_not_violate: [Criticism.]
        examples:
          - text: you are worthless
            violates: true
        thresholds:
          - min_score: 1.5
            action: remove
          - min_score: 0.3
            action: label
      spam:
        title: Spam
        title: Spam again
        definition: Bulk promotion.
        violates: [Scams.]
        does_not_violate: [Honest promotion.]
        examples: [{text: win a prize, violates: true}]
        thresholds: [{min_score: 0.5, action: label}]
    """
)


def _line(text: str, needle: str, nth: int = 0) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth]


def _write(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_pack_loads_and_is_clean() -> None:
    path = default_policy_path()
    assert check_policy(path) == []
    pack = load_policy(path)
    assert pack.id == "default"
    assert pack.model.backend == "embedded"
    assert pack.model.id == "modfleet-embedded"
    expected = {"harassment", "hate", "violence", "sexual", "self_harm", "spam"}
    assert expected <= set(pack.categories)
    for name in expected:  # the shipped model scores every category: none left to the LLM alone
        assert pack.categories[name].model_labels == [f"modfleet:{name}"]


def test_default_pack_examples_show_both_verdicts() -> None:
    for name, category in load_policy(default_policy_path()).categories.items():
        verdicts = {example.violates for example in category.examples}
        assert verdicts == {True, False}, name
        assert 4 <= len(category.violates) <= 8, name
        assert 3 <= len(category.does_not_violate) <= 6, name


def test_every_problem_is_reported_with_its_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, BROKEN)
    found = {(p.line, p.field): p for p in check_policy(path)}
    expected = {
        (_line(BROKEN, "colour:"), "model.colour"),
        (_line(BROKEN, "title: Harassment"), "categories.harassment.definition"),
        (_line(BROKEN, "min_score: 1.5"), "categories.harassment.thresholds[0].min_score"),
        (_line(BROKEN, "title: Spam again"), "categories.spam.title"),
    }
    assert set(found) == expected
    assert (
        "less than or equal to 1"
        in found[
            _line(BROKEN, "min_score: 1.5"), "categories.harassment.thresholds[0].min_score"
        ].message
    )
    assert (
        "missing"
        in found[_line(BROKEN, "title: Harassment"), "categories.harassment.definition"].message
    )
    duplicate = found[_line(BROKEN, "title: Spam again"), "categories.spam.title"]
    assert f"line {_line(BROKEN, 'title: Spam')}" in duplicate.message
    assert "unknown field" in found[_line(BROKEN, "colour:"), "model.colour"].message


def test_problems_come_in_file_order_with_columns(tmp_path: Path) -> None:
    problems = check_policy(_write(tmp_path, BROKEN))
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    colour = next(p for p in problems if p.field == "model.colour")
    assert colour.column == 3  # the key itself, not the value
    bad_score = next(p for p in problems if p.field.endswith("min_score"))
    assert bad_score.column == BROKEN.splitlines()[bad_score.line - 1].index("1.5") + 1


def test_load_policy_raises_with_all_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, BROKEN)
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(path)
    assert isinstance(caught.value, FatalError)
    assert caught.value.problems == check_policy(path)
    for problem in caught.value.problems:
        assert str(problem) in str(caught.value)


def test_problem_str_is_file_line_column_field_message() -> None:
    problem = Problem("p.yaml", 3, 7, "categories.hate.title", "required field is missing")
    assert str(problem) == "p.yaml:3:7: categories.hate.title: required field is missing"


def test_unknown_field_suggests_the_intended_one(tmp_path: Path) -> None:
    text = BROKEN.replace("    title: Harassment\n", "    titel: Harassment\n")
    problems = {p.field: p for p in check_policy(_write(tmp_path, text))}
    typo = problems["categories.harassment.titel"]
    assert typo.line == _line(text, "titel:")
    assert "did you mean 'title'" in typo.message
    assert "categories.harassment.title" in problems  # and the real one is now missing


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("id: x\ncategories:\n  a: [1, 2\n  b: 3\n", 4, 4, "line 3"),
        ("id: x\n\tversion: 1\n", 2, 1, "'\\t'"),
        ("id: x\nnote: Rule: no spam\n", 2, 11, "mapping values"),
        ("id: x\n---\nid: y\n", 2, 1, "single YAML document"),
    ],
)
def test_yaml_syntax_errors_are_reported_on_their_line(
    tmp_path: Path, text: str, line: int, column: int, words: str
) -> None:
    [problem] = check_policy(_write(tmp_path, text))
    assert (problem.line, problem.column) == (line, column)
    assert words in problem.message


def test_text_that_yaml_reads_as_a_number_gets_a_quoting_hint(tmp_path: Path) -> None:
    text = BROKEN.replace("version: 2026.11.0", "version: 1.5")
    [version] = [p for p in check_policy(_write(tmp_path, text)) if p.field == "version"]
    assert version.line == 2
    assert '"1.5"' in version.message


def test_bad_category_name_points_at_the_name(tmp_path: Path) -> None:
    text = BROKEN.replace("  spam:\n", "  Spam Bots:\n")
    [bad] = [p for p in check_policy(_write(tmp_path, text)) if p.field == "categories.Spam Bots"]
    assert (bad.line, bad.column) == (_line(text, "Spam Bots:"), 3)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"# only a comment\n", "empty"),
        (b"id: \xff\n", "UTF-8"),
        (b"- a list\n", "name: value"),
        (b"x: !!python/object:os.system 1\n", "unsupported"),
    ],
)
def test_files_that_are_not_a_pack_at_all(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "pack.yaml"
    path.write_bytes(content)
    [problem] = check_policy(path)
    assert words in problem.message


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    [problem] = check_policy(tmp_path / "missing.yaml")
    assert problem.file.endswith("missing.yaml")
    assert "cannot read" in problem.message


def test_self_referencing_alias_does_not_hang(tmp_path: Path) -> None:
    problems = check_policy(_write(tmp_path, BROKEN + "loop: &x [*x]\n"))
    assert any(p.field == "loop" and "unknown field" in p.message for p in problems)


@pytest.mark.parametrize(
    ("tail", "line", "words"),
    [
        ("# pasted from a document: \x0c\n", 2, "#x000c"),
        ("# \x07 and \x00\n", 2, "#x0007"),
        ("# \ufffe\n", 2, "#xfffe"),
    ],
)
def test_a_character_yaml_does_not_allow_is_a_problem_on_its_line(
    tmp_path: Path, tail: str, line: int, words: str
) -> None:
    # Anywhere in the file, a comment included: PyYAML refuses the whole stream.
    [problem] = check_policy(_write(tmp_path, "id: x\n" + tail))
    assert problem.line == line
    assert words in problem.message
    assert "character" in problem.message


def test_nesting_too_deep_to_read_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    [problem] = check_policy(_write(tmp_path, "id: x\nx: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "deep" in problem.message


def test_a_misspelt_fallback_backend_is_a_problem_on_its_line(tmp_path: Path) -> None:
    # Found only when the model goes down, it would end the worker just when it should stand in.
    text = BROKEN.replace("  colour: blue\n", "  on_model_down: fallback\n  fallback: embeded\n")
    problems = {p.field: p for p in check_policy(_write(tmp_path, text))}
    typo = problems["model.fallback"]
    assert typo.line == _line(text, "fallback: embeded")
    assert "'embedded'" in typo.message


def _with_version(version: str) -> str:
    source = default_policy_path().read_text(encoding="utf-8")
    return re.sub(r"(?m)^version:.*$", f"version: {version}", source, count=1)


def test_a_version_longer_than_decisions_carry_is_a_problem_naming_the_field_and_limit(
    tmp_path: Path,
) -> None:
    # Decisions and escalations carry the pack's version as policy_version: one longer than
    # their schemas allow would make every decision of the pack invalid.
    limit = schema("decision")["properties"]["policy_version"]["maxLength"]
    fits = "2026.11.2-rc." + "b" * (limit - len("2026.11.2-rc."))
    assert load_policy(_write(tmp_path, _with_version(fits), "fits.yaml")).version == fits
    path = _write(tmp_path, _with_version(fits + "x"), "long.yaml")
    [problem] = check_policy(path)
    assert problem.field == "version"
    assert problem.line == _line(path.read_text(encoding="utf-8"), "version:")
    assert f"at most {limit} characters" in problem.message
    assert "policy_version" in problem.message
    with pytest.raises(PolicyInvalid, match="version"):
        load_policy(path)
