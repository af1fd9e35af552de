"""Fixtures of the Helm chart tests; the machinery is in helmkit.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helmkit import (
    HERE,
    HOST_PYTHON_312,
    VARIANTS,
    Helm,
    Rendered,
    ensure_venv,
    needs_helm,
    render_op,
)


@pytest.fixture(scope="session")
def helm() -> Helm:
    if HOST_PYTHON_312 is None:
        pytest.skip("no Python >= 3.12 found (helm-sdkpy needs one)")
    return Helm(ensure_venv(HOST_PYTHON_312))


@pytest.fixture(scope="session")
def renders(helm: Helm) -> dict[str, Rendered]:
    results = helm.run(*(render_op(v) for v in VARIANTS.values()))
    return {
        name: Rendered.from_result(result) for name, result in zip(VARIANTS, results, strict=True)
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of this folder that need Helm, so a skip names the reason up front."""
    for item in items:
        if Path(str(item.path)).is_relative_to(HERE) and {"helm", "renders"} & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(needs_helm)
