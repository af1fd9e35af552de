"""Helm's library in a Python >= 3.12 venv, and renders of the chart, for tests/helm.

helm-sdkpy (Lint) needs Python >= 3.12 while the suite runs on 3.11, so the Helm tooling lives
in its own virtual environment, .venv-helm/venv, created on first use from requirements.txt
beside this file and reused while that file is unchanged. The tests talk to it through
helmtool.py as a subprocess. Without any Python >= 3.12 the tests that need Helm are skipped and
say why (``needs_helm``); the others (values schema, policy copies) still run.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "modfleet"
CACHE = REPO / ".venv-helm"
VENV = CACHE / "venv"
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
HELMTOOL = HERE / "helmtool.py"

RELEASE = "mf"
NAMESPACE = "moderation"
# Kinds from CRDs (KEDA, Prometheus Operator): kubernetes-validate has no schema for them, so
# the tests check their fields themselves.
CRD_KINDS = frozenset({"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"})


def _is_python_312(candidate: str) -> bool:
    try:
        out = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "True"


def find_python_312() -> str | None:
    """A Python >= 3.12: $HELM_TEST_PYTHON, this interpreter, PATH, then pyenv's versions."""
    candidates = [os.environ.get("HELM_TEST_PYTHON", ""), sys.executable]
    candidates += [shutil.which(n) or "" for n in ("python3.13", "python3.12", "python3")]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    versions = glob.glob(os.path.join(pyenv_root, "versions", "3.1[2-9]*", "bin", "python3"))
    candidates += sorted(versions, reverse=True)
    for candidate in candidates:
        if candidate and _is_python_312(candidate):
            return candidate
    return None


HOST_PYTHON_312 = find_python_312()
needs_helm = pytest.mark.skipif(
    HOST_PYTHON_312 is None,
    reason="no Python >= 3.12 found (helm-sdkpy needs one): install one with pyenv or point "
    "HELM_TEST_PYTHON at it",
)


def ensure_venv(python: str) -> Path:
    """The venv's interpreter, with requirements.txt installed (once; a file lock guards it)."""
    stamp_text = hashlib.sha256(REQUIREMENTS.read_bytes() + python.encode()).hexdigest()
    venv_python = VENV / "bin" / "python"
    stamp = VENV / ".modfleet-stamp"
    CACHE.mkdir(exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv_python.exists() and stamp.exists() and stamp.read_text() == stamp_text:
            return venv_python
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(VENV)], check=True, capture_output=True)
        install = subprocess.run(
            [
                str(venv_python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                str(REQUIREMENTS),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if install.returncode != 0:
            pytest.fail(
                f"installing the Helm test tools into {VENV} failed:\n"
                f"{install.stdout[-4000:]}{install.stderr[-4000:]}"
            )
        stamp.write_text(stamp_text)
    return venv_python


class Helm:
    """Runs helmtool.py operations in the Helm venv."""

    def __init__(self, python: Path) -> None:
        self.python = python

    def run(self, *ops: dict[str, Any]) -> list[Any]:
        proc = subprocess.run(
            [str(self.python), str(HELMTOOL)],
            input=json.dumps(list(ops)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"helmtool failed:\n{proc.stdout}\n{proc.stderr}"
        results: list[Any] = json.loads(proc.stdout)
        return results

    def render(self, values: dict[str, Any] | None = None, chart: Path = CHART) -> Rendered:
        (result,) = self.run(render_op(values, chart))
        return Rendered.from_result(result)


def copy_chart(tmp_path: Path) -> Path:
    """A copy of the chart to break on purpose."""
    chart = tmp_path / "modfleet"
    shutil.copytree(CHART, chart)
    return chart


def render_op(values: dict[str, Any] | None = None, chart: Path = CHART) -> dict[str, Any]:
    return {
        "op": "render",
        "chart": str(chart),
        "values": values or {},
        "release": RELEASE,
        "namespace": NAMESPACE,
    }


@dataclass
class Rendered:
    """One `helm template` output: the raw texts and the parsed documents with their template."""

    manifests: dict[str, str]
    docs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> Rendered:
        assert "error" not in result, result["error"]
        rendered = cls(result["manifests"])
        for path, text in sorted(rendered.manifests.items()):
            if not path.endswith(".yaml"):
                continue  # NOTES.txt
            for doc in yaml.safe_load_all(text):
                if doc is not None:
                    rendered.docs.append((path, doc))
        return rendered

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [doc for _, doc in self.docs]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
        return found[0]

    def pod_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """(kind/name, pod spec) of every Deployment, Job and Pod."""
        specs = []
        for doc in self.documents:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] in ("Deployment", "Job"):
                specs.append((name, doc["spec"]["template"]["spec"]))
            elif doc["kind"] == "Pod":
                specs.append((name, doc["spec"]))
        return specs

    def env(self, kind: str, name: str, container: str) -> dict[str, dict[str, Any]]:
        """The env entries of one container, by name."""
        doc = self.one(kind, name)
        spec = doc["spec"]["template"]["spec"]
        (c,) = [c for c in spec["containers"] if c["name"] == container]
        return {e["name"]: e for e in c.get("env", [])}


def ci_values(name: str) -> dict[str, Any]:
    """A values file of the chart's ci/ folder (the examples chart-testing also installs)."""
    values: dict[str, Any] = yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())
    return values


# Values variants rendered once per session: the chart's defaults, the ci/ examples, and the
# HPA alternative to KEDA.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu": ci_values("gpu"),
    "keda": ci_values("keda"),
    "full": ci_values("full"),
    "hpa": {"worker": {"autoscaling": {"hpa": {"enabled": True}}}},
}
