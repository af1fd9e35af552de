"""Where the shipped contracts live: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The ``topics`` or ``policies`` folder, installed (``_data``) or from the source tree."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"modfleet's {name}/ folder is missing from {_PACKAGE}")


def default_policy_path() -> Path:
    return data_dir("policies") / "default.yaml"


def topics_dir() -> Path:
    return data_dir("topics")
