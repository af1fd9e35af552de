"""``modfleet bench llm`` and ``bench gpu``: the parts that need no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modfleet.bench import llm as bench_llm
from modfleet.bench.llm import CUDA, LlmResult, Plan, Run, prefix_cache_counts
from modfleet.cli import main
from modfleet.inference import vllm_backend
from modfleet.inference.vllm_backend import cuda_available, engine_args

METRICS = """\
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1200.0
vllm:prefix_cache_queries_total{engine="1",model_name="m"} 800.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 1100.0
vllm:prefix_cache_hits_total{engine="1",model_name="m"} 700.0
vllm:external_prefix_cache_hits_total{engine="0",model_name="m"} 5.0
"""


def test_prefix_cache_counts_sum_vllms_counters_over_engines() -> None:
    assert prefix_cache_counts(METRICS) == (2000.0, 1800.0)
    assert prefix_cache_counts("") == (0.0, 0.0)  # a server without vLLM's metrics


def test_ratios_and_the_table_say_what_was_measured() -> None:
    result = LlmResult(
        {
            "model": "m",
            "adapter": "a",
            "server": "s",
            "posts": 64,
            "batch": 16,
            "batches": 4,
            "in_flight": 64,
        }
    )
    result.runs["g"] = Run(64, 4.0, prefix_queries=1000, prefix_hits=950)
    result.runs["g_off"] = Run(64, 8.0)
    result.runs["h"] = Run(64, 8.0)
    assert result.ratio("h", "g") == 0.5
    assert result.ratio("g", "g_off") == 2.0
    table = result.table()
    assert "h/g: 0.50" in table
    assert "95.0%" in table
    assert "micro-batches of 16 (4 at once), 64 requests in flight" in table
    data = json.loads(json.dumps(result.to_json()))
    assert data["h_over_g"] == 0.5
    assert data["runs"]["g"]["hit_rate"] == 0.95


def _plans(
    monkeypatch: pytest.MonkeyPatch, *argv: str, env: dict[str, str] | None = None
) -> dict[str, Plan]:
    """The plan each command hands to the one run function, with a CUDA device pretended."""
    plans: dict[str, Plan] = {}

    def run_llm(
        settings: Any, posts: int, url: str | None, off: bool, timeout_s: float, device: str
    ) -> LlmResult:
        plans[device] = Plan(device, settings, posts, url, off)
        return LlmResult({"model": "m", "adapter": "a", "server": "s", "posts": posts,
                          "batch": 1, "batches": 1, "in_flight": 1})  # fmt: skip

    for name in (*CUDA.defaults, "inference_model", "inference_adapter"):
        monkeypatch.delenv(f"MODFLEET_{name.upper()}", raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(bench_llm, "run_llm", run_llm)
    monkeypatch.setattr(vllm_backend, "require_gpu", lambda: None)
    for name in ("llm", "gpu"):
        result = CliRunner().invoke(main, ["bench", name, *argv])
        assert result.exit_code == 0, result.output
    return plans


def test_bench_llm_and_gpu_build_the_same_plan_but_for_device_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plans = _plans(monkeypatch, "--model", "/m", "--adapter", "llama-guard-3")
    cpu, gpu = plans["any"], plans["cuda"]
    assert (cpu.posts, gpu.posts) == (96, 2000)
    assert (cpu.url, cpu.prefix_off) == (gpu.url, gpu.prefix_off) == (None, True)
    differ = {k for k, v in dict(cpu.settings).items() if dict(gpu.settings)[k] != v}
    assert differ == {
        "batch_max",
        "batches_in_flight",
        "inference_max_in_flight",
        "vllm_enforce_eager",
    }
    assert gpu.settings.batch_max == 256
    assert gpu.settings.inference_max_in_flight == 256
    assert gpu.settings.batches_in_flight == 4
    assert gpu.settings.inference_model == cpu.settings.inference_model == "/m"
    # The engine: a KV-cache size and eager mode on a CPU, a share of the GPU and graphs there.
    on_cpu = engine_args(cpu.settings, cpu=True)
    on_gpu = engine_args(gpu.settings, cpu=False)
    assert on_cpu["enforce_eager"] is True
    assert "gpu_memory_utilization" not in on_cpu
    assert "enforce_eager" not in on_gpu
    assert "kv_cache_memory_bytes" not in on_gpu
    assert on_gpu["gpu_memory_utilization"] == 0.9


def test_options_and_modfleet_settings_win_over_gpu_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ("--posts", "32", "--batch", "16", "--in-flight", "8")
    plans = _plans(monkeypatch, *argv, env={"MODFLEET_BATCHES_IN_FLIGHT": "1"})
    gpu = plans["cuda"].settings
    assert plans["cuda"].posts == plans["any"].posts == 32
    assert (gpu.batch_max, gpu.inference_max_in_flight, gpu.batches_in_flight) == (16, 8, 1)
    assert gpu.vllm_enforce_eager is False  # the device default nobody set
    assert set(CUDA.defaults) >= {"batch_max", "inference_max_in_flight", "vllm_enforce_eager"}


def test_only_bench_llm_takes_a_server_url() -> None:
    result = CliRunner().invoke(main, ["bench", "gpu", "--url", "http://127.0.0.1:1/v1"])
    assert result.exit_code == 2
    assert "No such option: --url" in result.output


@pytest.mark.skipif(cuda_available(), reason="this machine has a CUDA device")
def test_bench_gpu_refuses_without_a_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bench_llm, "run_llm", pytest.fail)  # nothing is started
    out = tmp_path / "gpu.json"
    result = CliRunner().invoke(main, ["bench", "gpu", "--posts", "10", "--out", str(out)])
    assert result.exit_code == 2
    assert "modfleet bench gpu:" in result.output
    assert "vllm is not installed" in result.output or "no CUDA device" in result.output
    assert "run it on a GPU node, or `modfleet bench llm` here" in result.output
    assert not out.exists()
