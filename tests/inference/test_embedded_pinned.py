"""A pack may pin a retrained embedded model (modfleet-embedded@VERSION) beside the shipped one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modfleet.errors import FatalError
from modfleet.inference.embedded import DEFAULT_MODEL, EmbeddedClassifier, pinned_model_dir
from modfleet.inference.routing import Backends
from modfleet.policy import Policy, load_policy
from modfleet.settings import Settings

BASE = load_policy(Settings().policy_path)


def pinned(pack_id: str, model: str) -> Policy:
    ref = BASE.model.model_copy(update={"id": model})
    return BASE.model_copy(update={"id": pack_id, "model": ref, "mode": "shadow"})


@pytest.mark.parametrize(
    ("model", "complaint"),
    [
        ("modfleet-embedded@../../etc", "plain version"),
        ("modfleet-embedded@", "plain version"),
        ("modfleet-embedded@a/b", "plain version"),
        ("modfleet-embedded@absent", "no folder"),
    ],
)
def test_a_pinned_version_names_a_folder_and_nothing_else(
    tmp_path: Path, model: str, complaint: str
) -> None:
    with pytest.raises(FatalError, match=complaint):
        pinned_model_dir(tmp_path, model)


def test_a_pinned_model_needs_the_models_folder() -> None:
    with pytest.raises(FatalError, match="MODFLEET_EMBEDDED_MODELS_DIR"):
        pinned_model_dir(None, "modfleet-embedded@2026.12.0")


def test_a_pinned_pack_gets_its_own_model_and_the_others_share_the_shipped_one(
    tmp_path: Path,
) -> None:
    shutil.copytree(DEFAULT_MODEL, tmp_path / "2026.12.0")
    backends = Backends.from_settings(Settings(embedded_models_dir=tmp_path))
    live = backends.for_policy(BASE)
    other_live = backends.for_policy(BASE.model_copy(update={"id": "other"}))
    candidate = backends.for_policy(pinned("candidate", "modfleet-embedded@2026.12.0"))
    assert live is other_live
    assert isinstance(candidate, EmbeddedClassifier)
    assert candidate is not live


def test_a_pack_pinned_to_a_missing_model_is_refused_naming_the_pack(tmp_path: Path) -> None:
    backends = Backends.from_settings(Settings(embedded_models_dir=tmp_path))
    with pytest.raises(FatalError, match="candidate"):
        backends.check([pinned("candidate", "modfleet-embedded@nope")])
