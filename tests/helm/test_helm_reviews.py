"""The chart's `reviews` component: `modfleet reviews run`, its Service, ServiceMonitor and
NetworkPolicy (strict Kubernetes validation of these renders is in test_helm_render.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helmkit import CHART, Helm, Rendered, render_op

from modfleet.contracts.admin import planned_topics
from modfleet.settings import Settings, env_names

FULL = "mf-modfleet"
REVIEWS = f"{FULL}-reviews"
WORKER = f"{FULL}-worker"
TOPIC_INIT = f"{FULL}-topic-init"
OFF = {"reviews": {"enabled": False}, "serviceMonitor": {"enabled": True}}
RENAMED = {"topics": {"reviews": "acme.reviews.v2"}}


@pytest.fixture(scope="module")
def extra(helm: Helm) -> dict[str, Rendered]:
    off, renamed = helm.run(render_op(OFF), render_op(RENAMED))
    return {"off": Rendered.from_result(off), "renamed": Rendered.from_result(renamed)}


def _container(rendered: Rendered) -> dict[str, Any]:
    spec = rendered.one("Deployment", REVIEWS)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return dict(container)


def _settings_from(env: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in env_names():
        monkeypatch.delenv(name, raising=False)
    for name, entry in env.items():
        monkeypatch.setenv(name, entry.get("value", "from-a-secret"))
    return Settings()


def test_reviews_runs_the_live_join_on_the_workers_kafka_settings(
    renders: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = renders["default"]
    deployment = rendered.one("Deployment", REVIEWS)
    container = _container(rendered)
    env = rendered.env("Deployment", REVIEWS, "reviews")
    worker_env = rendered.env("Deployment", WORKER, "worker")

    assert container["command"] == ["modfleet"]
    assert container["args"] == ["reviews", "run"]
    # one copy of the join, never two at once during a rollout
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert set(env) <= env_names()
    shared = [n for n in env if "KAFKA" in n or "TOPIC" in n or "BROKER" in n or "GROUP" in n]
    assert len(shared) >= 9
    for name in shared:
        assert env[name] == worker_env[name], name
    # the join needs no Redis, policy or model
    assert not {n for n in env if "REDIS" in n or "CACHE" in n or "POLICY" in n}

    settings = _settings_from(env, monkeypatch)
    assert settings.reviews_topic == "modfleet.reviews.v1"
    assert settings.consumer_group == "modfleet-worker"  # reads reviews as modfleet-worker-reviews
    assert settings.reviews_join_max_decisions == 1_000_000
    assert settings.reviews_join_ttl_s == 1_209_600
    assert (settings.web_host, settings.web_port) == ("0.0.0.0", 6067)
    notes = rendered.manifests["modfleet/templates/NOTES.txt"]
    assert f"deployment/{REVIEWS}, reading modfleet.reviews.v1" in notes


def test_reviews_probes_and_ports_are_its_metrics_server(renders: dict[str, Rendered]) -> None:
    container = _container(renders["default"])
    assert container["ports"] == [{"name": "http", "containerPort": 6067, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "http"}, probe
    worker = renders["default"].one("Deployment", WORKER)["spec"]["template"]["spec"]
    reviews = renders["default"].one("Deployment", REVIEWS)["spec"]["template"]["spec"]
    assert reviews["securityContext"] == worker["securityContext"]
    assert container["securityContext"] == worker["containers"][0]["securityContext"]
    service = renders["default"].one("Service", REVIEWS)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 6067, "targetPort": "http", "protocol": "TCP"}
    ]


def test_reviews_takes_kafka_credentials_and_tls_like_the_workers(
    renders: dict[str, Rendered],
) -> None:
    env = renders["full"].env("Deployment", REVIEWS, "reviews")
    password = env["MODFLEET_KAFKA_SASL_PASSWORD"]
    assert "value" not in password
    assert password["valueFrom"]["secretKeyRef"] == {"name": "modfleet-kafka", "key": "password"}
    assert env["MODFLEET_KAFKA_SSL_CAFILE"]["value"] == "/etc/modfleet/kafka-tls/ca.crt"
    mounts = {m["name"]: m["mountPath"] for m in _container(renders["full"])["volumeMounts"]}
    assert mounts["kafka-tls"] == "/etc/modfleet/kafka-tls"


def test_service_monitor_job_is_the_one_the_dashboard_reads(renders: dict[str, Rendered]) -> None:
    """Prometheus names the job after the Service (no jobLabel); the dashboard's reviews row
    asks for job $release-reviews, with $release the chart's prefix <release>-modfleet."""
    rendered = renders["gpu"]
    monitor = rendered.one("ServiceMonitor", REVIEWS)
    service = rendered.one("Service", REVIEWS)
    pods = rendered.one("Deployment", REVIEWS)["spec"]["template"]["metadata"]["labels"]
    (endpoint,) = monitor["spec"]["endpoints"]

    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == REVIEWS
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pods.items()
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "http"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboard = (CHART / "files" / "dashboards" / "modfleet-fleet.json").read_text()
    exprs = [t["expr"] for p in json.loads(dashboard)["panels"] for t in p.get("targets", [])]
    jobs = {e.split('job=~"')[1].split('"')[0] for e in exprs if "modfleet_review" in e}
    assert jobs == {"$release-reviews"}
    assert "$release-reviews".replace("$release", FULL) == REVIEWS


def test_reviews_accepts_only_metrics_and_reaches_only_dns_and_kafka(
    renders: dict[str, Rendered],
) -> None:
    policy = renders["default"].one("NetworkPolicy", REVIEWS)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 9092, 9093}
    full = renders["full"].one("NetworkPolicy", REVIEWS)
    kafka_rule = next(r for r in full["spec"]["egress"] if r["ports"][0]["port"] == 9093)
    assert kafka_rule["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_single_replica_reviews_has_no_pdb(renders: dict[str, Rendered]) -> None:
    pdbs = renders["gpu"].of_kind("PodDisruptionBudget")
    assert pdbs
    assert REVIEWS not in {p["metadata"]["name"] for p in pdbs}


def test_disabled_reviews_renders_nothing(extra: dict[str, Rendered]) -> None:
    rendered = extra["off"]
    labelled = [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in rendered.documents
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "reviews"
    ]
    assert labelled == []
    assert rendered.of_kind("ServiceMonitor")  # the worker's is still there
    for path, text in rendered.manifests.items():
        if "/reviews-" in path:
            assert not text.strip(), path
    assert "reviews run" not in rendered.manifests["modfleet/templates/NOTES.txt"]


def test_topic_init_creates_the_reviews_topic_the_component_reads(
    extra: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = extra["renamed"]
    job_spec = rendered.one("Job", TOPIC_INIT)["spec"]["template"]["spec"]
    job_env = {e["name"]: e for e in job_spec["containers"][0]["env"]}
    reviews_env = rendered.env("Deployment", REVIEWS, "reviews")

    assert reviews_env["MODFLEET_REVIEWS_TOPIC"]["value"] == "acme.reviews.v2"
    created = {t.name for t in planned_topics(_settings_from(job_env, monkeypatch))}
    assert "acme.reviews.v2" in created
    assert "modfleet.reviews.v1" not in created
