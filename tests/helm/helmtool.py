"""Runs Helm and kubernetes-validate for tests/helm, inside the .venv-helm interpreter.

Reads a JSON list of operations on stdin and writes a JSON list of results on stdout, one per
operation; a failed operation gives ``{"error": "..."}`` and the others still run. Operations:

- ``{"op": "lint_sdkpy", "chart": DIR}``: helm-sdkpy's ``Lint`` (the chart's own values.yaml).
- ``{"op": "lint", "chart": DIR, "values": {...}, "strict": bool}``: helm-python-sdk's lint,
  whose findings carry messages.
- ``{"op": "render", "chart": DIR, "values": {...}, "release": NAME, "namespace": NS}``:
  ``helm template`` offline; gives ``{"manifests": {template path: text}}``.
- ``{"op": "validate", "documents": [...], "versions": ["1.25.0", ...]}``: kubernetes-validate
  in strict mode; gives ``{"results": [{"kind", "name", "version", "error"}]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


def lint_sdkpy(chart: str) -> dict[str, Any]:
    import helm_sdkpy

    report = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(chart))
    # Go error values marshal to {}: keep severity and path, which is all the report holds.
    return {
        "messages": [
            {"severity": m.get("Severity"), "path": m.get("Path")}
            for m in report.get("Messages") or []
        ],
        "errors": len(report.get("Errors") or []),
    }


def lint(chart: str, values: dict[str, Any] | None, strict: bool) -> dict[str, Any]:
    import helm_python

    report: dict[str, Any] = helm_python.lint(chart, values, strict=strict)
    return report


def render(chart: str, values: dict[str, Any] | None, release: str, namespace: str) -> Any:
    import helm_python

    with helm_python.Chart.load(chart) as loaded:
        manifests = loaded.render(values, name=release, namespace=namespace, is_install=True)
    return {"manifests": manifests}


def validate(documents: list[dict[str, Any]], versions: list[str]) -> dict[str, Any]:
    from kubernetes_validate import utils

    results = []
    for doc in documents:
        for version in versions:
            row = {"kind": doc.get("kind"), "name": doc.get("metadata", {}).get("name")}
            try:
                row["version"] = utils.validate(doc, version, strict=True)
                row["error"] = None
            except utils.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                row.update(version=exc.version, error=f"{path}: {exc.message}")
            except (utils.SchemaNotFoundError, utils.InvalidSchemaError) as exc:
                row.update(version=version, error=f"no schema: {exc.message}")
            results.append(row)
    return {"results": results}


def run(op: dict[str, Any]) -> Any:
    kind = op["op"]
    if kind == "lint_sdkpy":
        return lint_sdkpy(op["chart"])
    if kind == "lint":
        return lint(op["chart"], op.get("values"), op.get("strict", False))
    if kind == "render":
        return render(op["chart"], op.get("values"), op["release"], op["namespace"])
    if kind == "validate":
        return validate(op["documents"], op["versions"])
    raise ValueError(f"unknown op {kind!r}")


def main() -> None:
    results = []
    for op in json.load(sys.stdin):
        try:
            results.append(run(op))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
            results.append({"error": f"{type(exc).__name__}: {exc}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
