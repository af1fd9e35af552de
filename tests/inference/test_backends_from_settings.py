"""Backends chosen by Settings, and the vLLM paths: refused clearly without a GPU, exercised on
one (tests marked ``gpu``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from modfleet.errors import FatalError
from modfleet.inference import create_classifier
from modfleet.inference.cascade import CascadeClassifier
from modfleet.inference.openai_backend import OpenAICompatibleClassifier
from modfleet.inference.vllm_backend import cuda_available, engine_args, require_gpu
from modfleet.policy import Policy
from modfleet.settings import Settings


async def test_openai_backend_from_settings() -> None:
    settings = Settings(
        classifier_backend="openai",
        inference_urls="http://a:8000/v1; http://b:8000/v1",
        inference_model="openai/gpt-oss-safeguard-20b",
        inference_cache_salt="tenant-a",
    )
    classifier = create_classifier(settings)
    assert isinstance(classifier, OpenAICompatibleClassifier)
    assert classifier.model_id == "gpt-oss-safeguard:openai/gpt-oss-safeguard-20b"
    assert classifier.options.urls == ("http://a:8000/v1", "http://b:8000/v1")
    assert classifier.options.cache_salt == "tenant-a"
    assert "tenant-a" not in repr(settings)
    await classifier.close()


async def test_cascade_from_settings() -> None:
    settings = Settings(
        classifier_backend="cascade", inference_adapter="llama-guard-3", cascade_band_low=0.2
    )
    classifier = create_classifier(settings)
    assert isinstance(classifier, CascadeClassifier)
    assert classifier.low == 0.2
    assert isinstance(classifier.second, OpenAICompatibleClassifier)
    await classifier.close()


def test_an_inverted_cascade_band_is_refused() -> None:
    with pytest.raises(ValidationError, match="cascade_band_low"):
        Settings(cascade_band_low=0.9, cascade_band_high=0.1)


def test_engine_args_follow_settings() -> None:
    settings = Settings(inference_model="m", vllm_max_model_len=8192)
    assert engine_args(settings, prefix_caching=False) == {
        "model": "m",
        "gpu_memory_utilization": 0.9,
        "tensor_parallel_size": 1,
        "enable_prefix_caching": False,
        "max_model_len": 8192,
    }


@pytest.mark.skipif(cuda_available(), reason="this machine has a CUDA device")
def test_vllm_on_a_gpu_is_refused_without_one() -> None:
    with pytest.raises(FatalError, match=r"vllm is not installed|no CUDA device"):
        require_gpu()


def test_a_vllm_engine_that_cannot_start_is_fatal(tmp_path: Path) -> None:
    # Without vLLM: not installed. With vLLM's CPU build (the test tier): no such model.
    settings = Settings(
        classifier_backend="vllm",
        inference_adapter="llama-guard-3",
        inference_model=str(tmp_path / "no-such-model"),
    )
    with pytest.raises(FatalError, match=r"vllm is not installed|no-such-model"):
        create_classifier(settings)


# On a GPU node, with weights on local disk (GPU machines may have no network).
VLLM_MODEL = os.environ.get("MODFLEET_TEST_VLLM_MODEL")


@pytest.mark.gpu
@pytest.mark.skipif(not VLLM_MODEL, reason="gpu: set MODFLEET_TEST_VLLM_MODEL to a local model")
@pytest.mark.skipif(not cuda_available(), reason="gpu: needs a CUDA device")
async def test_vllm_engine_classifies_a_batch(small_policy: Policy) -> None:
    adapter = os.environ.get("MODFLEET_TEST_VLLM_ADAPTER", "qwen3guard")
    settings = Settings(
        classifier_backend="vllm",
        inference_model=VLLM_MODEL or "",
        inference_adapter=adapter,  # type: ignore[arg-type]
        vllm_max_model_len=4096,
        vllm_gpu_memory_utilization=0.5,
        inference_cache_salt="tenant-a",
    )
    classifier = create_classifier(settings)
    try:
        texts = ["the library opens at nine", "I will find you and hurt you"] * 8
        verdicts = await classifier.classify(texts, small_policy)
    finally:
        await classifier.close()
    assert len(verdicts) == len(texts)
    for verdict in verdicts:
        assert verdict.unparseable or verdict.categories is not None
        assert not verdict.unparseable or verdict.raw_output is not None


def test_on_a_cpu_the_kv_cache_gets_a_size_not_a_share_of_ram() -> None:
    # A share would be of the node's RAM, which vLLM's CPU build reserves up front.
    args = engine_args(Settings(inference_model="m"), cpu=True)
    assert "gpu_memory_utilization" not in args
    assert args["kv_cache_memory_bytes"] == 1 << 30
    assert args["enforce_eager"] is True  # compiling costs a CPU a minute or more of start-up
    sized = engine_args(Settings(inference_model="m", vllm_kv_cache_gib=2.5))
    assert sized["kv_cache_memory_bytes"] == int(2.5 * (1 << 30))
    assert "enforce_eager" not in sized


def test_a_failed_batch_raises_its_worst_error_not_a_group() -> None:
    from modfleet.errors import RecoverableError
    from modfleet.inference.vllm_backend import _worst

    dead, busy = FatalError("vLLM engine died"), RecoverableError("busy")
    group = ExceptionGroup("batch", [busy, ExceptionGroup("inner", [dead]), ValueError("x")])
    assert _worst(group) is dead, "a dead engine stays fatal, however many requests failed"
    assert _worst(ExceptionGroup("batch", [ValueError("x"), busy])) is busy
