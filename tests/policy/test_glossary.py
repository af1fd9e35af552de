"""A pack's glossary (``text.glossary``): slang and algospeak its staff write down, read as what
they mean. What is refused, where the problem is reported, and what it changes of the pack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile import within_seconds

from modfleet.policy import Policy
from modfleet.policy.load import check_policy
from modfleet.policy.text import GLOSSARY_TERMS, GROWTH, MEANING_CHARS, TERM_CHARS

Data = Callable[..., dict[str, Any]]


def _with(pack_data: Data, glossary: Any) -> dict[str, Any]:
    return pack_data() | {"text": {"glossary": glossary}}


def _problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    path = tmp_path / "pack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return [f"{p.field}: {p.message}" for p in check_policy(path)]


def test_a_glossary_is_read_case_and_width_free(pack_data: Data) -> None:
    fullwidth = "\uff55\uff4e\uff41\uff4c\uff49\uff56\uff45"  # "unalive"
    pack = Policy.model_validate(_with(pack_data, {" KYS ": "kill yourself", fullwidth: "kill"}))
    reading = pack.glossary
    assert reading is not None
    assert reading.read("KYS!! #kys, Unalive") == "kill yourself!! #kill yourself, kill"
    # A term is read where it stands as a word of its own: not inside another word.
    assert reading.read("skys kyss kys_ 2kys unalived") == "skys kyss kys_ 2kys unalived"


def test_a_term_may_hold_spaces_and_symbols_read_as_themselves(pack_data: Data) -> None:
    glossary = {"sewer slide": "suicide", "le$bean": "lesbian", "k.y.s": "kill yourself"}
    reading = Policy.model_validate(_with(pack_data, glossary)).glossary
    assert reading is not None
    assert reading.read("Sewer Slide, le$bean k.y.s") == "suicide, lesbian kill yourself"
    assert reading.read("sewerXslide lesbean kxyxs") == "sewerXslide lesbean kxyxs"


def test_a_pack_without_a_glossary_reads_nothing_again(pack: Policy) -> None:
    assert pack.glossary is None


@pytest.mark.parametrize(
    ("glossary", "words"),
    [
        ({"kys": ""}, "at least 1 character"),
        ({"": "kill yourself"}, "at least 1 character"),
        ({"k" * (TERM_CHARS + 1): "x"}, f"at most {TERM_CHARS} characters"),
        ({"kys": "x" * (MEANING_CHARS + 1)}, f"at most {MEANING_CHARS} characters"),
        ({"#kys": "kill yourself"}, "starts and ends with a letter or a digit"),
        ({"kys!": "kill yourself"}, "starts and ends with a letter or a digit"),
        ({"k\nys": "kill yourself"}, "one line"),
        ({"kys": "kill\nyourself"}, "one line"),
        ({"kys": "kill yourself", "KYS": "kiss your sister"}, "'KYS' is 'kys' again"),
        ({f"t{i}": "x" for i in range(GLOSSARY_TERMS + 1)}, f"at most {GLOSSARY_TERMS} terms"),
        (["kys"], "group of 'name: value' lines"),
    ],
)
def test_a_glossary_the_fleet_cannot_read_is_refused_where_it_is_written(
    tmp_path: Path, pack_data: Data, glossary: Any, words: str
) -> None:
    problems = _problems(tmp_path, _with(pack_data, glossary))
    assert problems, glossary
    assert all(p.startswith("text.glossary") for p in problems), problems
    assert any(words in p for p in problems), problems


def test_a_number_yaml_reads_as_a_meaning_gets_a_quoting_hint(
    tmp_path: Path, pack_data: Data
) -> None:
    problems = _problems(tmp_path, _with(pack_data, {"one": 1}))
    assert any("write it in quotes" in p for p in problems), problems


def test_the_glossary_is_part_of_what_the_model_reads(pack_data: Data) -> None:
    plain = Policy.model_validate(pack_data())
    empty = Policy.model_validate(_with(pack_data, {}))
    one = Policy.model_validate(_with(pack_data, {"kys": "kill yourself"}))
    other = Policy.model_validate(_with(pack_data, {"kys": "kiss your sister"}))
    # A pack written before the glossary keeps its digest (and its cached verdicts).
    assert empty.digest == plain.digest
    assert len({plain.digest, one.digest, other.digest}) == 3
    # The LLM tier reads it with the policy.
    assert "kys" not in plain.prompt_text()
    assert "- **kys**: kill yourself" in one.prompt_text()


def test_a_hostile_post_costs_its_length_and_its_reading_grows_a_bounded_amount(
    pack_data: Data,
) -> None:
    terms = {
        f"t{i:03d}" + "x" * (TERM_CHARS - 4): "y" * MEANING_CHARS for i in range(GLOSSARY_TERMS - 1)
    }
    terms["k"] = "y" * MEANING_CHARS
    reading = Policy.model_validate(_with(pack_data, terms)).glossary
    assert reading is not None
    for text in ("k " * 100_000, " ".join(terms) * 4, "t" * 200_000):
        with within_seconds(5):
            read = reading.read(text)
        assert len(read) <= len(text) + max(len(text), GROWTH)
    assert reading.read("k k") == "y" * MEANING_CHARS + " " + "y" * MEANING_CHARS
