from pathlib import Path

from modfleet.settings_doc import render

DOC = Path(__file__).parents[1] / "docs" / "settings.md"


def test_settings_reference_is_current() -> None:
    hint = "regenerate: python -m modfleet.settings_doc > docs/settings.md"
    assert DOC.read_text() == render(), hint


def test_every_field_is_described() -> None:
    for line in render().splitlines()[9:]:
        assert not line.endswith("|  |"), line
