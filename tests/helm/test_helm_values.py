"""The chart's values, schema and policy copies, checked without Helm."""

from __future__ import annotations

import copy
import filecmp
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helmkit import CHART, REPO, ci_values

from modfleet.settings import Settings

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def merged(overrides: dict[str, Any]) -> dict[str, Any]:
    """The chart's defaults with overrides merged in, as Helm coalesces them."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    return merge(copy.deepcopy(DEFAULTS), overrides)


def schema_errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)
    ]


def test_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", ["gpu", "keda", "full"])
def test_defaults_and_ci_values_match_the_schema(name: str) -> None:
    assert schema_errors(DEFAULTS) == []
    assert schema_errors(merged(ci_values(name))) == []


# (path into the values, wrong value, what the error must say)
WRONG_VALUES = [
    (["worker", "replicaCount"], "three", "is not of type 'integer'"),
    (["worker", "batchWithinS"], "fast", "is not of type 'number'"),
    (["redis", "cacheEnabled"], "yes", "is not of type 'boolean'"),
    (["kafka", "securityProtocol"], "TLS", "is not one of"),
    (["inference", "gpus"], 0, "less than the minimum"),
    (["worker", "webPort"], 70000, "greater than the maximum"),
    (["worker", "replicas"], 3, "Additional properties are not allowed"),
    (["redis", "url"], "redis://user:hunter2@redis:6379/0", "does not match"),
    (["worker", "extraEnv"], [{"name": "MODFLEET_BATCH_MAX", "value": "1"}], "should not be"),
    (["kafka", "sasl", "existingSecret"], {"password": "x"}, "is not of type 'string'"),
    # a Settings field with a value of its own, and a secret, are not plain settings
    (["worker", "settings"], {"batch_max": 10}, "should not be valid"),
    (["worker", "settings"], {"inference_api_key": "sk-1"}, "should not be valid"),
    (["worker", "settings"], {"inference_max_in_flight": [1]}, "is not of type"),
    (["worker", "secretSettings"], {"redis_url": {"secretName": "r", "key": "u"}}, "should not"),
    # the chart sets the cache's HMAC key itself, from a Secret
    (["worker", "settings"], {"cache_hmac_key": "k" * 32}, "should not be valid"),
    (["alerts", "lagSource"], "prometheus", "is not one of"),
    # replaced by minAvailable: a values file that still has it is told so, not ignored
    (["inference", "pdb", "maxUnavailable"], 1, "Additional properties are not allowed"),
    (["inference", "apiKey", "key"], "", "should be non-empty"),
    # misspelt Settings fields: the worker would never read them
    (["worker", "settings"], {"inference_max_inflight": 128}, "is not one of"),
    (["worker", "settings"], {"shutdown_grace": 45}, "is not one of"),
    (
        ["worker", "secretSettings"],
        {"inference_apikey": {"secretName": "s", "key": "k"}},
        "not one",
    ),
    # the image has no vLLM engine (no [gpu] extra): the vLLM tier is `inference`, via openai
    (["worker", "classifierBackend"], "vllm", "is not one of"),
    (["worker", "settings"], {"cascade_llm_backend": "vllm"}, "is not one of"),
    (["networkPolicy", "extraEgress"], {"ports": [{"port": 443}]}, "is not of type 'array'"),
    (["worker", "extraVolumeMounts"], [{"name": "models"}], "'mountPath' is a required property"),
    (["policies", "loadFolder"], "yes", "is not of type 'boolean'"),
]


@pytest.mark.parametrize(("path", "value", "message"), WRONG_VALUES, ids=lambda v: str(v)[:30])
def test_schema_rejects_wrong_values(path: list[str], value: Any, message: str) -> None:
    values = copy.deepcopy(DEFAULTS)
    target = values
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = schema_errors(values)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("key", ["settings", "secretSettings"])
def test_settings_keys_are_exactly_the_settings_fields_not_set_elsewhere(key: str) -> None:
    """worker.settings / secretSettings take Settings field names only: a new Settings field
    must be added to the schema's enum (unless the chart sets it from a value of its own)."""
    names = SCHEMA["properties"]["worker"]["properties"][key]["propertyNames"]
    managed = set(names["not"]["enum"])
    assert managed <= set(Settings.model_fields), "the denylist names fields Settings lacks"
    assert sorted(names["enum"]) == sorted(set(Settings.model_fields) - managed)


def _key_nodes(node: yaml.Node, schema: dict[str, Any], path: str) -> list[tuple[str, int]]:
    """(dotted path, line) of every values key that the schema declares as a property."""
    schema = _resolve(schema)
    out: list[tuple[str, int]] = []
    properties = schema.get("properties")
    if not isinstance(node, yaml.MappingNode) or not properties:
        return out
    for key_node, value_node in node.value:
        key = key_node.value
        if key in properties:
            out.append((f"{path}{key}", key_node.start_mark.line))
            out += _key_nodes(value_node, properties[key], f"{path}{key}.")
    return out


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMA["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_values_key_is_commented() -> None:
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    uncommented = []
    for dotted, line in _key_nodes(yaml.compose(text), SCHEMA, ""):
        above = lines[line - 1].strip() if line else ""
        if not (above.startswith("#") or " # " in lines[line]):
            uncommented.append(f"values.yaml:{line + 1}: {dotted}")
    assert uncommented == []


def test_chart_policy_copies_equal_the_repository_policies() -> None:
    source, copies = REPO / "policies", CHART / "files" / "policies"
    names = sorted(p.name for p in source.iterdir() if p.is_file())
    assert sorted(p.name for p in copies.iterdir()) == names, "run scripts/sync-helm-policies"
    _, mismatch, errors = filecmp.cmpfiles(source, copies, names, shallow=False)
    assert mismatch == errors == [], "run scripts/sync-helm-policies"


def test_sync_script_copies_policies_and_checks(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "sync-helm-policies", tmp_path / "scripts")
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    stale = tmp_path / "helm" / "modfleet" / "files" / "policies"
    stale.mkdir(parents=True)
    (stale / "removed.yaml").write_text("id: removed\n")
    (tmp_path / "policies" / "strict.yaml").write_text("id: strict\n")
    script = str(tmp_path / "scripts" / "sync-helm-policies")

    before = subprocess.run([script, "--check"], capture_output=True, text=True, check=False)
    assert before.returncode == 1
    subprocess.run([script], check=True, capture_output=True)
    after = subprocess.run([script, "--check"], capture_output=True, text=True, check=False)

    assert after.returncode == 0, after.stdout + after.stderr
    assert sorted(p.name for p in stale.iterdir()) == sorted(
        p.name for p in (tmp_path / "policies").iterdir()
    )
