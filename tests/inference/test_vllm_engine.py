"""The in-process ``vllm`` backend on vLLM's CPU build, with SmolLM2-135M-Instruct.

One engine serves the module (it takes about 20 s to load on 2 cores); each adapter's
classifier shares it. The tiny model's opinions are poor: what is proven is the engine path
(prompt, structured output, logprobs, cache salt, parse) and how its failures surface. The
module's last test kills the engine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import vllm_model
from vllm_model import MISSING_REASON, available

from modfleet.errors import FatalError, RejectedInput
from modfleet.inference import create_classifier
from modfleet.inference.adapters import create_adapter
from modfleet.metrics import Metrics
from modfleet.policy import Policy
from modfleet.settings import Settings
from modfleet.stream.infer import Inference, Retry

pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not available(), reason=MISSING_REASON)]

if available():
    from modfleet.bench.llm import prefix_cache_counts, registry_text
    from modfleet.inference.vllm_backend import VLLMClassifier, engine_prompt, sampling_params

TEXTS = ["the library opens at nine", "I will find you and hurt you", "you are a complete idiot"]


@pytest.fixture(scope="module")
def environ() -> Iterator[None]:
    with vllm_model.vllm_environ():
        yield


@pytest.fixture(scope="module")
async def classifier(environ: None) -> AsyncIterator[VLLMClassifier]:
    """Built as a hot reload builds it: from Settings, on whatever device vLLM finds (the
    CPU), in a thread while the worker's loop goes on; then used from that loop."""
    settings = Settings(
        classifier_backend="vllm",
        inference_model=str(vllm_model.model_dir()),
        inference_adapter="llama-guard-3",
        vllm_max_model_len=4096,
        inference_max_in_flight=16,
    )
    turns = 0

    async def turn() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0.1)
            turns += 1

    turning = asyncio.create_task(turn())
    started = time.monotonic()
    built = await asyncio.to_thread(create_classifier, settings)
    took = time.monotonic() - started
    turning.cancel()
    assert isinstance(built, VLLMClassifier)
    # The loop turned through the load (its heartbeats and /health with it), not after it.
    assert turns >= took / 0.1 / 2, f"the loop turned {turns} times in {took:.1f} s"
    yield built
    await built.close()


def sharing(classifier: VLLMClassifier, adapter: str, salt: str | None = None) -> VLLMClassifier:
    """Another adapter's classifier on the same engine."""
    return VLLMClassifier(create_adapter(adapter), classifier._engine, "smollm2", cache_salt=salt)


@pytest.mark.parametrize("adapter", ["llama-guard-3", "llama-guard-4", "qwen3guard"])
async def test_every_adapter_gets_a_parsed_verdict_under_structured_output(
    classifier: VLLMClassifier, adapter: str, small_policy: Policy
) -> None:
    # Unconstrained, a 135M chat model rarely answers in a guard model's format; the regex
    # constraint makes every answer one the adapter can read.
    verdicts = await sharing(classifier, adapter).classify(TEXTS, small_policy)
    assert len(verdicts) == len(TEXTS)
    for verdict in verdicts:
        assert not verdict.unparseable, verdict.raw_output
        assert verdict.categories is not None
        assert set(verdict.categories) <= set(small_policy.categories)


async def test_llama_guard_scores_come_from_the_first_tokens_logprobs(
    classifier: VLLMClassifier, small_policy: Policy
) -> None:
    verdicts = await classifier.classify(TEXTS, small_policy)
    p_unsafe = [v.extra["p_unsafe"] for v in verdicts]
    # Without logprobs the score is the bare answer, 0.0 or 1.0.
    assert all(p is not None and 0.0 < p < 1.0 for p in p_unsafe), p_unsafe
    assert len(set(p_unsafe)) > 1, "each post gets its own probability"


async def test_the_engine_streams_nothing_but_the_final_answer(
    classifier: VLLMClassifier, small_policy: Policy
) -> None:
    prompt, request = engine_prompt(classifier.adapter, None, small_policy, TEXTS[0], None)
    outputs = [
        output
        async for output in classifier._engine.generate(
            prompt, sampling_params(request, None), uuid.uuid4().hex
        )
    ]
    assert len(outputs) == 1, "one output per request, not one per decoded token"
    assert outputs[0].finished
    assert len(outputs[0].outputs[0].token_ids) > 1


async def hits_of(classifier: VLLMClassifier, policy: Policy) -> tuple[float, float]:
    """Prefix-cache (queries, hits) that one request adds, from vLLM's own counters."""
    before = prefix_cache_counts(registry_text())
    await classifier.classify([f"a fresh post {uuid.uuid4().hex}"], policy)
    deadline = time.monotonic() + 10
    while True:  # the counters follow the engine's next stats update
        after = prefix_cache_counts(registry_text())
        if after[0] > before[0] or time.monotonic() > deadline:
            return after[0] - before[0], after[1] - before[1]
        await asyncio.sleep(0.1)


async def test_cache_salt_keeps_one_tenants_prefix_cache_from_another(
    classifier: VLLMClassifier, small_policy: Policy
) -> None:
    tenant_a = sharing(classifier, "llama-guard-3", salt=f"a-{uuid.uuid4().hex}")
    tenant_b = sharing(classifier, "llama-guard-3", salt=f"b-{uuid.uuid4().hex}")
    await hits_of(tenant_a, small_policy)  # a's policy prefix is now cached
    queries, hits = await hits_of(tenant_a, small_policy)
    assert queries > 0
    assert hits > 0, "a's second post reuses the blocks of a's policy prefix"
    queries, hits = await hits_of(tenant_b, small_policy)
    assert queries > 0
    assert hits == 0, "b's identical prefix must not hit a's cache blocks"


async def test_a_prompt_over_the_context_length_is_scored_on_the_part_that_fits(
    classifier: VLLMClassifier, small_policy: Policy
) -> None:
    # Under the pack's 20,000 characters, and far over this engine's 4,096 tokens.
    endless = "\U0001f4a3 " * 4_000
    with pytest.raises(RejectedInput, match="vLLM refused the request"):
        await classifier.classify([TEXTS[0], endless], small_policy)
    # Through the worker's inference step: the batch is isolated, the other post scored, and
    # the refused one scored on the first part the model takes (it used to go unmoderated).
    inference = Inference(classifier, Retry(3, 0.0, timeout_s=240), Metrics())
    results = await inference.classify(small_policy, ["ok", "endless"], [TEXTS[0], endless])
    assert not results.failed
    assert set(results.found) == {"ok", "endless"}
    assert results.found["endless"].cut, "the decision will say the model saw a part"
    assert not results.found["ok"].cut


async def test_a_dead_engine_is_fatal_not_retried(
    classifier: VLLMClassifier, small_policy: Policy
) -> None:
    # Last in the module: it kills the engine's core process, as the OOM killer would.
    import psutil  # a dependency of vLLM's

    engine = [
        child
        for child in psutil.Process().children(recursive=True)
        if child.name().startswith("VLLM::")  # vLLM titles its processes; brokers stay up
    ]
    assert engine, "no vLLM engine process found"
    for child in engine:
        child.kill()
    with pytest.raises(FatalError, match="engine died"):
        await classifier.classify(TEXTS, small_policy)
