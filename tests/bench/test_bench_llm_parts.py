"""``modfleet bench llm`` and ``bench gpu``: the parts that need no model."""

from __future__ import annotations

import json

from modfleet.bench.gpu import _SAMPLE, sample_texts
from modfleet.bench.llm import LlmResult, Run, prefix_cache_counts

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


def test_sample_texts_skip_the_samples_broken_lines() -> None:
    lines = _SAMPLE.read_text().splitlines()
    broken = sum(1 for line in lines if '"text"' not in line or not line.rstrip().endswith("}"))
    assert broken > 0, "the sample keeps its deliberately broken lines"
    texts = sample_texts(len(lines) + 5)
    assert len(texts) == len(lines) + 5
    assert all(isinstance(t, str) and t for t in texts)
    assert len(set(texts)) == len(texts), "no prompt is served whole from the prefix cache"


def test_ratios_and_the_table_say_what_was_measured() -> None:
    result = LlmResult(
        {"model": "m", "adapter": "a", "server": "s", "posts": 64, "batch": 16, "in_flight": 64}
    )
    result.runs["g"] = Run(64, 4.0, prefix_queries=1000, prefix_hits=950)
    result.runs["g_off"] = Run(64, 8.0)
    result.runs["h"] = Run(64, 8.0)
    assert result.ratio("h", "g") == 0.5
    assert result.ratio("g", "g_off") == 2.0
    table = result.table()
    assert "h/g: 0.50" in table
    assert "95.0%" in table
    data = json.loads(json.dumps(result.to_json()))
    assert data["h_over_g"] == 0.5
    assert data["runs"]["g"]["hit_rate"] == 0.95
