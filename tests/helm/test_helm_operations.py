"""Day-2 operation of the chart: the GPU tier through upgrades and scaling, refusals of values
that cannot work, generated credentials, the state a live release carries into an upgrade, and
alert rules. Every scenario here renders offline and validates strictly against Kubernetes.

A live release is played by replacing templates/_live.tpl (the chart's only `lookup` calls) in a
copy of the chart, since `helm template` sees an empty cluster.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmkit import CHART, CRD_KINDS, Helm, Rendered, ci_values, copy_chart, render_op

from modfleet.settings import Settings

FULL = "mf-modfleet"
WORKER = f"{FULL}-worker"
INFERENCE = f"{FULL}-inference"
CREDENTIALS = f"{FULL}-credentials"
KUBE_VERSIONS = ["1.25.0", "1.37.0"]

GPU = {"inference": {"enabled": True}}
SCENARIOS: dict[str, dict[str, Any]] = {
    "gpu-defaults": GPU,
    "gpu-ci": ci_values("gpu"),
    "gpu-rwo-single": {
        "inference": {
            "enabled": True,
            "replicaCount": 1,
            "modelCache": {"accessModes": ["ReadWriteOnce"]},
            "pdb": {"enabled": False},
        }
    },
    "gpu-cluster-ip": {"inference": {"enabled": True, "service": {"headless": False}}},
    "workers-fill-partitions": {"worker": {"replicaCount": 12}},
    "keda-alerts": {**ci_values("keda"), "alerts": {"enabled": True}},
    "no-redis-auth": {"redis": {"auth": False, "cacheHmacKey": {"existingSecret": "cache"}}},
    # an external LLM over https, reached through an extra egress rule; packs from a folder and
    # a volume of retrained embedded models
    "external-llm-folder-packs": {
        "worker": {
            "classifierBackend": "openai",
            "settings": {
                "inference_urls": "https://llm.internal.example/v1",
                "embedded_models_dir": "/models/embedded",
            },
            "extraVolumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "m"}}],
            "extraVolumeMounts": [
                {"name": "models", "mountPath": "/models/embedded", "readOnly": True}
            ],
        },
        "policies": {"loadFolder": True},
        "networkPolicy": {
            "extraEgress": [
                {
                    "to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}],
                    "ports": [{"port": 443, "protocol": "TCP"}],
                }
            ]
        },
    },
}


@pytest.fixture(scope="module")
def scenarios(helm: Helm) -> dict[str, Rendered]:
    results = helm.run(*(render_op(v) for v in SCENARIOS.values()))
    return {n: Rendered.from_result(r) for n, r in zip(SCENARIOS, results, strict=True)}


def test_every_scenario_validates_strictly(helm: Helm, scenarios: dict[str, Rendered]) -> None:
    docs = [d for r in scenarios.values() for d in r.documents if d["kind"] not in CRD_KINDS]
    (result,) = helm.run({"op": "validate", "documents": docs, "versions": KUBE_VERSIONS})
    assert [r for r in result["results"] if r["error"]] == []
    assert len(result["results"]) == len(docs) * len(KUBE_VERSIONS)


def _pod(rendered: Rendered, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.one("Deployment", name)["spec"]["template"]["spec"]
    return spec


# --- the GPU tier through upgrades --------------------------------------------------------------


def test_gpu_tier_surges_and_keeps_one_replica_serving(scenarios: dict[str, Rendered]) -> None:
    rendered = scenarios["gpu-defaults"]
    spec = rendered.one("Deployment", INFERENCE)["spec"]

    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert rendered.one("PodDisruptionBudget", INFERENCE)["spec"]["minAvailable"] == 1
    claim = rendered.one("PersistentVolumeClaim", f"{INFERENCE}-model-cache")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_a_read_write_once_cache_allows_one_replica_replaced_not_surged(
    scenarios: dict[str, Rendered],
) -> None:
    spec = scenarios["gpu-rwo-single"].one("Deployment", INFERENCE)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pdbs = [
        d["metadata"]["name"] for d in scenarios["gpu-rwo-single"].of_kind("PodDisruptionBudget")
    ]
    assert pdbs == [WORKER]  # one replica cannot keep one serving: its PDB is off


def test_vllm_drains_in_flight_requests_and_knows_its_user(
    scenarios: dict[str, Rendered],
) -> None:
    pod = _pod(scenarios["gpu-defaults"], INFERENCE)
    (vllm,) = pod["containers"]
    env = {e["name"]: e for e in vllm["env"]}

    assert pod["terminationGracePeriodSeconds"] == 120
    assert vllm["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "15"]}}
    # torch's getpass.getuser() needs one of these for a UID without a passwd entry
    assert env["USER"]["value"] == env["LOGNAME"]["value"] == "vllm"
    assert env["HOME"]["value"] == "/tmp"


def test_gpu_autoscaling_scales_down_slowly_from_two(scenarios: dict[str, Rendered]) -> None:
    so = scenarios["gpu-ci"].one("ScaledObject", INFERENCE)["spec"]
    assert so["minReplicaCount"] == 2
    behavior = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 1800
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 600}]
    thresholds = {t["name"]: float(t["metadata"]["threshold"]) for t in so["triggers"]}
    args = scenarios["gpu-ci"].one("Deployment", INFERENCE)["spec"]["template"]["spec"]
    max_num_seqs = next(
        int(a.split("=")[1]) for a in args["containers"][0]["args"] if "max-num-seqs" in a
    )
    assert thresholds["vllm-in-flight"] < max_num_seqs


# --- spreading requests over replicas -----------------------------------------------------------


def test_workers_reach_every_ready_vllm_pod_through_a_headless_service(
    scenarios: dict[str, Rendered],
) -> None:
    """The name resolves to each ready pod's IP, on the container port (a headless Service has
    no port mapping); the worker's balancer spreads requests over those addresses."""
    rendered = scenarios["gpu-defaults"]
    service = rendered.one("Service", INFERENCE)["spec"]
    (vllm,) = _pod(rendered, INFERENCE)["containers"]
    container_port = vllm["ports"][0]["containerPort"]
    url = rendered.env("Deployment", WORKER, "worker")["MODFLEET_INFERENCE_URLS"]["value"]

    assert service["clusterIP"] == "None"
    assert service["publishNotReadyAddresses"] is False
    assert service["selector"].items() <= (
        rendered.one("Deployment", INFERENCE)["spec"]["template"]["metadata"]["labels"].items()
    )
    assert url == f"http://{INFERENCE}:{container_port}/v1"
    egress = rendered.one("NetworkPolicy", WORKER)["spec"]["egress"]
    rule = next(r for r in egress if r["ports"][0]["port"] == container_port)
    assert rule["to"][0]["podSelector"]["matchLabels"] == service["selector"]


def test_a_cluster_ip_service_is_the_opt_out(scenarios: dict[str, Rendered]) -> None:
    service = scenarios["gpu-cluster-ip"].one("Service", INFERENCE)["spec"]
    assert "clusterIP" not in service
    assert service["ports"][0]["port"] == 8000


# --- exposure -----------------------------------------------------------------------------------


def test_vllm_api_key_comes_from_a_secret_shared_with_the_workers(
    scenarios: dict[str, Rendered],
) -> None:
    for name, secret, key in [
        ("gpu-defaults", CREDENTIALS, "inference-api-key"),
        ("gpu-ci", "modfleet-llm", "api-key"),
    ]:
        rendered = scenarios[name]
        (vllm,) = _pod(rendered, INFERENCE)["containers"]
        server = {e["name"]: e for e in vllm["env"]}["VLLM_API_KEY"]
        client = rendered.env("Deployment", WORKER, "worker")["MODFLEET_INFERENCE_API_KEY"]
        ref = {"secretKeyRef": {"name": secret, "key": key}}
        assert server["valueFrom"] == client["valueFrom"] == ref, name
    data = scenarios["gpu-defaults"].one("Secret", CREDENTIALS)["data"]
    assert len(base64.b64decode(data["inference-api-key"])) == 48


def test_vllm_admits_only_workers_and_the_named_scraper(scenarios: dict[str, Rendered]) -> None:
    policy = scenarios["gpu-ci"].one("NetworkPolicy", INFERENCE)["spec"]
    froms = [rule["from"] for rule in policy["ingress"]]
    assert all(froms), "an ingress rule without `from` admits every pod"
    assert froms[0][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    namespace = {"kubernetes.io/metadata.name": "monitoring"}
    assert froms[1] == [{"namespaceSelector": {"matchLabels": namespace}}]


# --- workers and partitions ---------------------------------------------------------------------


def test_workers_filling_every_partition_roll_without_surging(
    renders: dict[str, Rendered], scenarios: dict[str, Rendered]
) -> None:
    """A 13th worker on 12 partitions gets none, is never ready and would stall the rollout."""

    def rolling(rendered: Rendered) -> Any:
        return rendered.one("Deployment", WORKER)["spec"]["strategy"]["rollingUpdate"]

    assert rolling(renders["default"]) == {"maxSurge": 1, "maxUnavailable": 0}
    assert rolling(scenarios["workers-fill-partitions"]) == {"maxSurge": 0, "maxUnavailable": 1}
    assert rolling(renders["keda"]) == {"maxSurge": 0, "maxUnavailable": 1}  # maxReplicas 12


# --- refusals -----------------------------------------------------------------------------------

VLLM_PACK = "id: gpu\nversion: 1.0.0\nmodel:\n  backend: vllm\n"
VLLM_FALLBACK_PACK = (
    "id: shadow\nversion: 1.0.0\nmode: shadow\n"
    "model:\n  backend: openai\n  on_model_down: fallback\n  fallback: vllm\n"
)


REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "rwo-cache-two-replicas": (
        {"inference": {"enabled": True, "modelCache": {"accessModes": ["ReadWriteOnce"]}}},
        "inference.modelCache is a ReadWriteOnce volume",
    ),
    "rwo-cache-autoscaled": (
        {
            "inference": {
                "enabled": True,
                "replicaCount": 1,
                "modelCache": {"existingClaim": "weights", "accessModes": ["ReadWriteOnce"]},
                "autoscaling": {"enabled": True},
            }
        },
        "inference.modelCache is a ReadWriteOnce volume",
    ),
    "gpu-min-replicas-zero": (
        {"inference": {"enabled": True, "autoscaling": {"enabled": True, "minReplicas": 0}}},
        "inference.autoscaling.minReplicas 0: with no vLLM pod there are no vllm:* series",
    ),
    "gpu-autoscaling-without-metrics": (
        {"inference": {"enabled": True, "autoscaling": {"enabled": True}}},
        "inference.autoscaling scales on vllm:* series that nothing scrapes",
    ),
    "running-threshold-above-max-num-seqs": (
        {
            "inference": {
                "enabled": True,
                "maxNumSeqs": 128,
                "autoscaling": {
                    "enabled": True,
                    "runningThreshold": 200,
                    "seriesSelector": 'job="vllm"',
                },
            }
        },
        "runningThreshold 200 can never be reached: a replica runs at most "
        "inference.maxNumSeqs 128",
    ),
    "keda-workers-above-partitions": (
        {"worker": {"autoscaling": {"keda": {"enabled": True, "maxReplicas": 24}}}},
        "up to 24 workers on 12 partitions of modfleet.posts.v1",
    ),
    "hpa-workers-above-partitions": (
        {"worker": {"autoscaling": {"hpa": {"enabled": True, "maxReplicas": 16}}}},
        "up to 16 workers on 12 partitions",
    ),
    "fixed-workers-above-partitions": (
        {"worker": {"replicaCount": 4}, "topics": {"postsPartitions": 3}},
        "up to 4 workers on 3 partitions",
    ),
    "pdb-with-one-replica": (
        {"inference": {"enabled": True, "replicaCount": 1}},
        "inference.pdb.minAvailable 1 with 1 replica(s) leaves none to evict",
    ),
    "rollout-takes-all-down": (
        {"inference": {"enabled": True, "rollout": {"maxSurge": 0, "maxUnavailable": 2}}},
        "maxUnavailable 2 takes all 2 replica(s) down at once",
    ),
    "scraper-admits-every-pod": (
        {"inference": {"enabled": True}, "serviceMonitor": {"enabled": True}},
        "networkPolicy.metricsFrom must name your Prometheus",
    ),
    "otel-without-metrics-endpoint": (
        {
            "worker": {
                "settings": {
                    "otel_enabled": True,
                    "otel_exporter_otlp_endpoint": "http://c:4318/v1/traces",
                }
            }
        },
        "set worker.settings.otel_exporter_otlp_metrics_endpoint too",
    ),
    "api-key-twice": (
        {
            "inference": {"enabled": True},
            "worker": {"secretSettings": {"inference_api_key": {"secretName": "s", "key": "k"}}},
        },
        "use inference.apiKey.existingSecret instead",
    ),
    "headless-load-balancer": (
        {"inference": {"enabled": True, "service": {"type": "LoadBalancer"}}},
        "inference.service.headless needs type ClusterIP",
    ),
    # egress the worker NetworkPolicy would silently drop
    "llm-port-not-allowed": (
        {
            "worker": {
                "classifierBackend": "openai",
                "settings": {"inference_urls": "https://llm.internal.example/v1"},
            }
        },
        "worker.settings.inference_urls names port 443 (llm.internal.example), which no egress "
        "rule of the worker NetworkPolicy allows",
    ),
    "second-llm-port-not-allowed": (
        {
            "worker": {
                "settings": {"inference_urls": "http://a.example:8000/v1;http://b.example:8001/v1"}
            },
            "networkPolicy": {"extraEgress": [{"ports": [{"port": 8000}]}]},
        },
        "worker.settings.inference_urls names port 8001 (b.example)",
    ),
    "broker-port-not-allowed": (
        {"kafka": {"brokerUrl": "kafka://k-0:9092;kafka://k-1:19092"}},
        "kafka.brokerUrl names port 19092 (k-1), which networkPolicy.kafka.ports [9092 9093] "
        "does not allow",
    ),
    "redis-port-not-allowed": (
        {"redis": {"url": "rediss://cache.example:6380/0"}},
        "redis.url names port 6380 (cache.example), which no egress rule of the worker "
        "NetworkPolicy allows",
    ),
    "otel-port-not-allowed": (
        {
            "worker": {
                "settings": {
                    "otel_enabled": True,
                    "otel_exporter_otlp_endpoint": "http://c:4318/v1/traces",
                    "otel_exporter_otlp_metrics_endpoint": "https://c.example/v1/metrics",
                }
            }
        },
        "worker.settings.otel_exporter_otlp_metrics_endpoint names port 443 (c.example)",
    ),
    # topic-init creates the posts topic with its own partition count
    "topic-init-partitions-differ": (
        {"topicInit": {"partitions": 6}},
        "topicInit.partitions 6 differs from topics.postsPartitions 12",
    ),
    "worker-pdb-blocks-drains": (
        {"worker": {"pdb": {"maxUnavailable": 0}}},
        "worker.pdb.maxUnavailable 0 lets no worker be evicted: node drains would hang",
    ),
    "worker-pdb-blocks-drains-percent": (
        {"worker": {"pdb": {"maxUnavailable": "0%"}}},
        "worker.pdb.maxUnavailable 0% lets no worker be evicted",
    ),
    "hpa-min-above-max": (
        {"worker": {"autoscaling": {"hpa": {"enabled": True, "minReplicas": 6, "maxReplicas": 4}}}},
        "worker.autoscaling.hpa.minReplicas 6 is above maxReplicas 4",
    ),
    "keda-min-above-max": (
        {
            "worker": {
                "autoscaling": {"keda": {"enabled": True, "minReplicas": 6, "maxReplicas": 4}}
            }
        },
        "worker.autoscaling.keda.minReplicas 6 is above maxReplicas 4",
    ),
    "shutdown-grace-not-below-termination-grace": (
        {"worker": {"settings": {"shutdown_grace_s": 60}}},
        "worker.settings.shutdown_grace_s 60 is not below worker.terminationGracePeriodSeconds 60",
    ),
    # a pack that runs vLLM in the worker process crash-loops on the image, which has no vLLM
    "active-pack-backend-vllm": (
        {"policies": {"active": "gpu.yaml", "extraFiles": {"gpu.yaml": VLLM_PACK}}},
        "policy pack gpu.yaml: model.backend vllm runs the vLLM engine inside the worker",
    ),
    "folder-pack-fallback-vllm": (
        {"policies": {"loadFolder": True, "extraFiles": {"shadow.yml": VLLM_FALLBACK_PACK}}},
        "policy pack shadow.yml: model.fallback vllm runs the vLLM engine inside the worker",
    ),
    "default-shutdown-grace-not-below-termination-grace": (
        {"worker": {"terminationGracePeriodSeconds": 30}},
        "worker.settings.shutdown_grace_s 30 (the default) is not below "
        "worker.terminationGracePeriodSeconds 30",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_combinations_that_cannot_work_are_refused_with_a_reason(helm: Helm, case: str) -> None:
    values, message = REFUSALS[case]
    (result,) = helm.run(render_op(values))
    assert "error" in result, f"{case} rendered"
    assert message in result["error"]


def test_only_the_packs_the_workers_load_are_held_to_the_images_backends(helm: Helm) -> None:
    openai_pack = VLLM_PACK.replace("vllm", "openai")
    not_loaded, openai_in_folder = helm.run(
        render_op({"policies": {"extraFiles": {"gpu.yaml": VLLM_PACK}}}),  # active: default.yaml
        render_op({"policies": {"loadFolder": True, "extraFiles": {"llm.yaml": openai_pack}}}),
    )
    assert "error" not in not_loaded, not_loaded.get("error")
    assert "error" not in openai_in_folder, openai_in_folder.get("error")


def test_the_termination_grace_check_uses_the_settings_default(helm: Helm) -> None:
    """Unset, shutdown_grace_s is Settings' default, which the chart's check must assume."""
    default = int(Settings.model_fields["shutdown_grace_s"].default)
    refused, ok = helm.run(
        render_op({"worker": {"terminationGracePeriodSeconds": default}}),
        render_op({"worker": {"terminationGracePeriodSeconds": default + 1}}),
    )
    assert f"shutdown_grace_s {default} (the default) is not below" in refused["error"]
    assert "error" not in ok


def test_an_external_llm_is_reached_through_extra_egress(
    helm: Helm, scenarios: dict[str, Rendered]
) -> None:
    policy = scenarios["external-llm-folder-packs"].one("NetworkPolicy", WORKER)
    assert policy["spec"]["egress"][-1] == {
        "to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }
    # no NetworkPolicy stands between a pod and itself, and a rule without ports allows them all
    local, any_port, named, no_policy = helm.run(
        render_op({"worker": {"settings": {"inference_urls": "http://localhost:8000/v1"}}}),
        render_op(
            {
                "worker": {"settings": {"inference_urls": "https://llm.example/v1"}},
                "networkPolicy": {"extraEgress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]},
            }
        ),
        render_op(
            {
                "worker": {"settings": {"inference_urls": "https://llm.example/v1"}},
                "networkPolicy": {"extraEgress": [{"ports": [{"port": 440, "endPort": 450}]}]},
            }
        ),
        render_op(
            {
                "worker": {"settings": {"inference_urls": "https://llm.example/v1"}},
                "redis": {"url": "redis://r:6380/0"},
                "networkPolicy": {"enabled": False},
            }
        ),
    )
    for result in (local, any_port, named, no_policy):
        assert "error" not in result, result["error"]


def test_packs_load_from_the_mounted_folder_beside_extra_volumes(
    scenarios: dict[str, Rendered],
) -> None:
    rendered = scenarios["external-llm-folder-packs"]
    pod = _pod(rendered, WORKER)
    (worker,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["MODFLEET_POLICY_PATH"] == "/etc/modfleet/policies"
    assert env["MODFLEET_EMBEDDED_MODELS_DIR"] == "/models/embedded"
    assert {"name": "models", "mountPath": "/models/embedded", "readOnly": True} in worker[
        "volumeMounts"
    ]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "m"}} in pod["volumes"]
    notes = rendered.manifests["modfleet/templates/NOTES.txt"]
    assert "policy packs: every *.yaml in /etc/modfleet/policies" in notes


# --- what a live release carries into an upgrade ------------------------------------------------


def live_chart(tmp_path: Path, replicas: int = 0, group: str = "", data: str = "{}") -> Path:
    """A chart copy whose lookups answer as a live release would."""
    chart = copy_chart(tmp_path)
    (chart / "templates" / "_live.tpl").write_text(
        f'{{{{- define "modfleet.liveReplicas" -}}}}{replicas}{{{{- end -}}}}\n'
        f'{{{{- define "modfleet.liveConsumerGroup" -}}}}{group}{{{{- end -}}}}\n'
        f'{{{{- define "modfleet.liveCredentials" -}}}}{data}{{{{- end -}}}}\n'
    )
    return chart


def test_an_upgrade_keeps_the_autoscalers_replica_count(helm: Helm, tmp_path: Path) -> None:
    chart = live_chart(tmp_path, replicas=7)
    keda = helm.render(ci_values("keda"), chart=chart)
    gpu = helm.render(ci_values("gpu"), chart=chart)
    assert keda.one("Deployment", WORKER)["spec"]["replicas"] == 7
    assert gpu.one("Deployment", INFERENCE)["spec"]["replicas"] == 7
    # the live count never goes below minReplicas
    low = helm.render(ci_values("gpu"), chart=live_chart(tmp_path / "low", replicas=1))
    assert low.one("Deployment", INFERENCE)["spec"]["replicas"] == 2


def test_renaming_the_consumer_group_is_refused_until_allowed(helm: Helm, tmp_path: Path) -> None:
    chart = live_chart(tmp_path, group="modfleet-worker")
    renamed = {"worker": {"consumerGroup": "modfleet-v2"}}
    allowed = {"worker": {"consumerGroup": "modfleet-v2", "consumerGroupChangeAllowed": True}}
    same, refused, ok = helm.run(
        render_op({}, chart), render_op(renamed, chart), render_op(allowed, chart)
    )

    assert "error" not in same
    assert (
        'worker.consumerGroup changes from "modfleet-worker" to "modfleet-v2"' in (refused["error"])
    )
    assert "would start at the earliest retained post" in refused["error"]
    env = Rendered.from_result(ok).env("Deployment", WORKER, "worker")
    assert env["MODFLEET_CONSUMER_GROUP"]["value"] == "modfleet-v2"


def test_generated_credentials_survive_an_upgrade(helm: Helm, tmp_path: Path) -> None:
    kept = base64.b64encode(b"k" * 48).decode()
    chart = live_chart(tmp_path, data=f"cache-hmac-key: {kept}")
    data = helm.render({}, chart=chart).one("Secret", CREDENTIALS)["data"]
    assert data["cache-hmac-key"] == kept
    assert len(base64.b64decode(data["redis-password"])) == 48


def test_redis_auth_and_the_cache_key_are_on_by_default(
    renders: dict[str, Rendered], scenarios: dict[str, Rendered]
) -> None:
    env = renders["default"].env("Deployment", WORKER, "worker")
    for name, key in [
        ("MODFLEET_REDIS_PASSWORD", "redis-password"),
        ("MODFLEET_CACHE_HMAC_KEY", "cache-hmac-key"),
    ]:
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": CREDENTIALS, "key": key}}
    secret = renders["default"].one("Secret", CREDENTIALS)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert sorted(secret["data"]) == ["cache-hmac-key", "redis-password"]

    off = scenarios["no-redis-auth"]
    env = off.env("Deployment", WORKER, "worker")
    assert "MODFLEET_REDIS_PASSWORD" not in env
    assert env["MODFLEET_CACHE_HMAC_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "cache"
    assert not off.of_kind("Secret")


# --- alerts -------------------------------------------------------------------------------------


def _rules(rendered: Rendered) -> dict[str, dict[str, Any]]:
    (rule,) = rendered.of_kind("PrometheusRule")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_alerts_are_optional_and_cover_the_fleet(
    renders: dict[str, Rendered], scenarios: dict[str, Rendered]
) -> None:
    assert not renders["default"].of_kind("PrometheusRule")
    rules = _rules(renders["gpu"])
    assert set(rules) == {
        "ModfleetConsumerLagGrowing",
        "ModfleetLagWithoutThroughput",
        "ModfleetInferenceFailing",
        "ModfleetDeadLetters",
        "ModfleetWorkerRestarts",
        "ModfleetCacheDown",
        "ModfleetWorkersDown",
        "ModfleetModelDown",
        "ModfleetHtmlRendererDown",
        "ModfleetGpuTierDown",
        "ModfleetVllmQueueBacklog",
        "ModfleetVllmKvCachePressure",
    }
    assert rules["ModfleetInferenceFailing"]["labels"]["severity"] == "critical"
    assert 'reason="inference_failed"' in rules["ModfleetInferenceFailing"]["expr"]
    assert f'job="{WORKER}"' in rules["ModfleetCacheDown"]["expr"]
    assert f'job="{INFERENCE}"' in rules["ModfleetGpuTierDown"]["expr"]
    # A worker holding its batch names what it waits for, whichever backend a pack runs on
    # (the embedded model, an endpoint, vLLM): the lag alerts say only that posts wait.
    for name, gauge in (
        ("ModfleetModelDown", "modfleet_model_down"),
        ("ModfleetHtmlRendererDown", "modfleet_html_renderer_down"),
    ):
        assert f'max({gauge}{{namespace="moderation",job="{WORKER}"}}) == 1' in rules[name]["expr"]
        assert rules[name]["labels"]["severity"] == "critical"
    for name, rule in rules.items():
        assert rule["annotations"]["runbook_url"].startswith("docs/runbook.md#"), name
    (rule,) = renders["gpu"].of_kind("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # the CPU-only fleet has no GPU group
    assert "ModfleetGpuTierDown" not in _rules(scenarios["keda-alerts"])


def test_lag_alerts_read_offsets_outside_the_workers(
    renders: dict[str, Rendered], scenarios: dict[str, Rendered]
) -> None:
    """Not modfleet_consumer_lag, which a stuck worker stops updating: kafka-exporter's
    committed-offset lag, or the lag KEDA's scaler reads itself."""
    exporter = _rules(renders["gpu"])["ModfleetLagWithoutThroughput"]["expr"]
    keda = _rules(scenarios["keda-alerts"])["ModfleetConsumerLagGrowing"]["expr"]
    assert 'kafka_consumergroup_lag{consumergroup="modfleet-worker",topic="modfleet.posts.v1"}' in (
        exporter
    )
    assert f'keda_scaler_metrics_value{{scaledObject="{WORKER}"' in keda
    assert "modfleet_consumer_lag" not in exporter + keda


def test_notes_never_recommend_reuse_values(renders: dict[str, Rendered]) -> None:
    notes = renders["default"].manifests["modfleet/templates/NOTES.txt"]
    assert "--reset-then-reuse-values" in notes
    assert "helm upgrade" in notes
    commands = [line for line in notes.splitlines() if "helm upgrade" in line]
    assert all("--reuse-values" not in line for line in commands), commands


# --- the runbook --------------------------------------------------------------------------------

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, spaces to hyphens, punctuation dropped."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_links_to_a_runbook_section(renders: dict[str, Rendered]) -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for name, rule in _rules(renders["gpu"]).items():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{name}: docs/runbook.md has no section #{anchor}"


def test_the_runbook_covers_day_two_operations_with_the_charts_own_numbers() -> None:
    text = RUNBOOK.read_text()
    anchors = _anchors(text)
    for section in (
        "minimum-versions",
        "replaying-the-dead-letter-topic",
        "gpu-outage",
        "kafka-outage",
        "redis-outage",
        "adding-partitions",
        "resetting-or-renaming-a-consumer-group",
        "upgrading-and-rolling-back-the-chart",
    ):
        assert section in anchors, section
    assert "modfleet replay --from-topic modfleet.dead-letter.v1" in text
    assert "--reset-then-reuse-values" in text
    assert "worker.consumerGroupChangeAllowed=true" in text
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    minimum = chart["kubeVersion"].removeprefix(">=").split(".0-")[0]
    assert f"| Kubernetes | {minimum} |" in text


def test_a_fresh_worker_joins_the_group_only_once_a_vllm_replica_answers(
    renders: dict[str, Rendered], scenarios: dict[str, Rendered]
) -> None:
    pod = _pod(scenarios["gpu-defaults"], WORKER)
    (wait,) = pod["initContainers"]
    script = wait["args"][0]
    assert f'url = "http://{INFERENCE}:8000/health"' in script
    compile(script, "wait-for-inference", "exec")
    assert wait["securityContext"]["readOnlyRootFilesystem"] is True
    assert "initContainers" not in _pod(renders["default"], WORKER)


def test_drains_can_evict_workers_that_are_not_ready(helm: Helm) -> None:
    """During a model outage every worker says not ready; with AlwaysAllow a drain may still
    evict them (a field Kubernetes has had since 1.27, so opt-in while the chart supports 1.25)."""
    rendered = helm.render({"worker": {"pdb": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}}})
    pdb = rendered.one("PodDisruptionBudget", WORKER)
    (result,) = helm.run({"op": "validate", "documents": [pdb], "versions": ["1.37.0"]})
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert result["results"][0]["error"] is None
