from __future__ import annotations

from pathlib import Path

import pytest

from modfleet.policy import Policy, load_policy
from modfleet.resources import default_policy_path

SUPPORT = Path(__file__).parents[1] / "support"


@pytest.fixture(scope="session")
def policy() -> Policy:
    """The bundled default pack: six categories, the prompt an LLM reads in production."""
    return load_policy(default_policy_path())


@pytest.fixture(scope="session")
def small_policy() -> Policy:
    return load_policy(SUPPORT / "llm_policy.yaml")
