"""helm lint through Helm's own library: the chart is clean, and breakage is caught.

Two bindings of Helm v4's Go library run lint: helm-sdkpy (``Lint``, which reports severities
and paths only) and helm-python-sdk (whose findings carry messages, and which lints with a
values override, as ``helm lint -f``). Severity: 1 info, 2 warning, 3 error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helmkit import CHART, Helm, ci_values, copy_chart, render_op

ERROR = 3


def lint_ops(chart: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"op": "lint_sdkpy", "chart": str(chart)},
        {"op": "lint", "chart": str(chart), "values": values, "strict": True},
    ]


def errors_of(sdkpy: dict[str, Any], helm_python: dict[str, Any]) -> tuple[list[str], list[str]]:
    assert "error" not in sdkpy, sdkpy
    assert "error" not in helm_python, helm_python
    sdkpy_errors = [m["path"] for m in sdkpy["messages"] if m["severity"] >= ERROR]
    messages = [f"{m['path']}: {m['error']}" for m in helm_python["messages"]]
    return sdkpy_errors, [m for m in messages if "icon is recommended" not in m]


def test_chart_lints_clean(helm: Helm) -> None:
    sdkpy, strict = helm.run(*lint_ops(CHART))
    sdkpy_errors, findings = errors_of(sdkpy, strict)

    assert sdkpy["errors"] == 0
    assert sdkpy_errors == []
    # strict: warnings count as errors; only the "icon is recommended" note may remain.
    assert findings == []


@pytest.mark.parametrize("name", ["gpu", "keda", "full"])
def test_chart_lints_clean_with_ci_values(helm: Helm, name: str) -> None:
    (report,) = helm.run({"op": "lint", "chart": str(CHART), "values": ci_values(name)})
    assert report["errors"] == []


BREAKAGES = {
    # an action that is never closed: the template does not parse
    "unclosed-if": ("worker-service.yaml", "{{- if .Values.worker.pdb.enabled }}\n"),
    # a function Helm does not have
    "unknown-function": ("worker-pdb.yaml", "{{ .Values.worker.replicaCount | nosuchfn }}\n"),
    # renders, but not to YAML
    "invalid-yaml": ("worker-service.yaml", "  broken: [unclosed\n"),
    # a value path that does not exist, dereferenced
    "nil-pointer": ("worker-hpa.yaml", "{{ .Values.worker.nosuch.key }}\n"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_template_fails_lint(helm: Helm, tmp_path: Path, breakage: str) -> None:
    template, line = BREAKAGES[breakage]
    chart = copy_chart(tmp_path)
    path = chart / "templates" / template
    path.write_text(path.read_text() + line)

    sdkpy, report = helm.run(*lint_ops(chart))
    sdkpy_errors, findings = errors_of(sdkpy, report)

    assert sdkpy["errors"] > 0
    assert any(p.startswith("templates/") for p in sdkpy_errors), sdkpy_errors
    assert report["errors"], findings
    assert any(template in f for f in findings), findings


# (values override, what Helm's schema check must name)
WRONG_VALUES = {
    "replicas-as-word": ({"worker": {"replicaCount": "three"}}, "/worker/replicaCount"),
    "flag-as-string": ({"inference": {"enabled": "yes"}}, "/inference/enabled"),
    "unknown-key": ({"worker": {"replicas": 3}}, "/worker"),
    "credentials-in-url": ({"redis": {"url": "redis://:pw@redis:6379"}}, "/redis/url"),
    "secret-in-settings": (
        {"worker": {"settings": {"inference_api_key": "k"}}},
        "invalid propertyName 'inference_api_key'",
    ),
}


@pytest.mark.parametrize("case", list(WRONG_VALUES))
def test_wrong_typed_value_fails_lint_and_render(helm: Helm, case: str) -> None:
    values, where = WRONG_VALUES[case]
    (lint, render) = helm.run(
        {"op": "lint", "chart": str(CHART), "values": values},
        render_op(values),
    )

    assert any(where in e for e in lint["errors"]), lint
    assert "error" in render
    assert "schema" in render["error"]
    assert where in render["error"]


def test_wrong_typed_value_in_values_yaml_fails_sdkpy_lint(helm: Helm, tmp_path: Path) -> None:
    chart = copy_chart(tmp_path)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["worker"]["replicaCount"] = "three"
    (chart / "values.yaml").write_text(yaml.safe_dump(values))

    sdkpy, report = helm.run(*lint_ops(chart))
    sdkpy_errors, findings = errors_of(sdkpy, report)

    assert "values.yaml" in sdkpy_errors
    assert any("/worker/replicaCount" in f for f in findings), findings


def test_values_the_schema_cannot_judge_fail_the_render_with_a_reason(helm: Helm) -> None:
    sasl, policy, urls = helm.run(
        render_op({"kafka": {"securityProtocol": "SASL_SSL"}}),
        render_op({"policies": {"active": "strict.yaml"}}),
        render_op(
            {"inference": {"enabled": True}, "worker": {"settings": {"inference_urls": "x"}}}
        ),
    )
    assert "kafka.sasl.username and kafka.sasl.existingSecret" in sasl["error"]
    assert 'policies.active "strict.yaml" is not among the policy files' in policy["error"]
    assert "worker.settings.inference_urls is set by the chart" in urls["error"]
