"""``modfleet bench gpu``: vLLM offline (``LLM.generate``) against modfleet's pipeline on vLLM.

The same posts, rendered by the same adapter into the same prompts, go once through vLLM's
offline batch API, the upper bound of what the GPU can do, and once through ``Pipeline.process``
with the in-process ``vllm`` backend, in micro-batches as the stream worker sends them. Each is
measured with prefix caching on and off. Every measurement runs in a child process of its own,
so that each engine starts on a GPU whose memory the previous one has released; a child hands
its rate back in a file, since vLLM writes its own lines to stdout. Both runs have every prompt
admitted at once (the pipeline's in-flight cap is the post count), so the only difference
measured is the pipeline's micro-batching.

Where no GPU (or no vLLM) is present the command refuses with exit status 2 and says why.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from modfleet.errors import FatalError
from modfleet.inference.adapters import ADAPTERS, create_adapter
from modfleet.policy import Policy, load_policy
from modfleet.settings import Settings

_SAMPLE = Path(__file__).parents[1] / "stack" / "sample_posts.jsonl"
_MODES = ("offline", "pipeline")


def sample_texts(count: int) -> list[str]:
    """``count`` distinct texts from the sample, whose deliberately broken lines (bad JSON, no
    text) a worker dead-letters; here they are skipped."""
    texts: list[str] = []
    for line in _SAMPLE.read_text(encoding="utf-8").splitlines():
        try:
            post = json.loads(line)
        except ValueError:
            continue
        text = post.get("text") if isinstance(post, dict) else None
        if isinstance(text, str) and text.strip():
            texts.append(text)
    if not texts:
        raise FatalError(f"no posts in {_SAMPLE}")
    # Distinct prompts: a repeated post would be served whole from the prefix cache.
    out: list[str] = []
    seen: set[str] = set()
    for i in range(count):
        text = texts[i % len(texts)]
        text = f"{text} #{i}" if text in seen else text
        seen.add(text)
        out.append(text)
    return out


@click.command("gpu")
@click.option("--posts", "count", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--model", default=None, help="Model to load (default MODFLEET_INFERENCE_MODEL).")
@click.option(
    "--adapter",
    type=click.Choice(ADAPTERS),
    default=None,
    help="Prompt format (default MODFLEET_INFERENCE_ADAPTER).",
)
@click.option(
    "--batch",
    default=256,
    show_default=True,
    type=click.IntRange(1),
    help="Micro-batch size of the pipeline runs.",
)
@click.option("--child", type=click.Choice(_MODES), hidden=True)
@click.option("--result", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
@click.option("--prefix-caching/--no-prefix-caching", default=True, hidden=True)
def gpu(
    count: int,
    model: str | None,
    adapter: str | None,
    batch: int,
    child: str | None,
    result: Path | None,
    prefix_caching: bool,
) -> None:
    """Posts/s of vLLM offline and of modfleet's pipeline, prefix caching on and off."""
    overrides: dict[str, Any] = {}
    if model:
        overrides["inference_model"] = model
    if adapter:
        overrides["inference_adapter"] = adapter
    settings = Settings(**overrides)
    if child is not None and result is not None:
        rate = _measure(child, settings, count, batch, prefix_caching)
        result.write_text(json.dumps({"posts_per_s": rate}))
        return
    _refuse_without_gpu()
    rates = {
        (mode, on): _child(mode, on, count, batch, overrides)
        for mode in _MODES
        for on in (True, False)
    }
    click.echo(report(rates, settings, count, batch))


def _refuse_without_gpu() -> None:
    from modfleet.inference.vllm_backend import require_gpu

    try:
        require_gpu()
    except FatalError as exc:
        click.echo(f"modfleet bench gpu: {exc}; run it on a GPU node.", err=True)
        sys.exit(2)


def _child(mode: str, caching: bool, count: int, batch: int, overrides: dict[str, Any]) -> float:
    with tempfile.TemporaryDirectory(prefix="modfleet-bench-gpu-") as tmp:
        result = Path(tmp) / "rate.json"
        done = subprocess.run(
            [*_child_argv(mode, caching, count, batch, overrides), "--result", str(result)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not result.exists():
            raise click.ClickException(f"{mode} run failed:\n{done.stderr[-3000:]}")
        return float(json.loads(result.read_text())["posts_per_s"])


def _child_argv(
    mode: str, caching: bool, count: int, batch: int, overrides: dict[str, Any]
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "modfleet.bench.gpu",
        "--child",
        mode,
        "--posts",
        str(count),
        "--batch",
        str(batch),
        "--prefix-caching" if caching else "--no-prefix-caching",
    ]
    if "inference_model" in overrides:
        argv += ["--model", overrides["inference_model"]]
    if "inference_adapter" in overrides:
        argv += ["--adapter", overrides["inference_adapter"]]
    return argv


def report(rates: dict[tuple[str, bool], float], settings: Settings, count: int, batch: int) -> str:
    lines = [
        f"model {settings.inference_model} ({settings.inference_adapter}), {count} posts, "
        f"pipeline micro-batches of {batch}, every prompt admitted at once in both runs",
        f"{'run':<10}{'prefix cache':>14}{'posts/s':>12}",
    ]
    for (mode, on), rate in rates.items():
        lines.append(f"{mode:<10}{'on' if on else 'off':>14}{rate:>12.1f}")
    for on in (True, False):
        ratio = rates[("pipeline", on)] / rates[("offline", on)]
        lines.append(f"pipeline / offline, prefix cache {'on' if on else 'off'}: {ratio:.2f}")
    for mode in _MODES:
        gain = rates[(mode, True)] / rates[(mode, False)]
        lines.append(f"prefix-cache gain, {mode}: {gain:.2f}x")
    return "\n".join(lines)


def _measure(mode: str, settings: Settings, count: int, batch: int, caching: bool) -> float:
    texts = sample_texts(count)
    policy = load_policy(settings.policy_path)
    if mode == "offline":
        return _offline(settings, policy, texts, caching)
    return asyncio.run(_pipeline(settings, policy, texts, batch, caching))


def _offline(settings: Settings, policy: Policy, texts: list[str], caching: bool) -> float:
    from vllm import LLM

    from modfleet.inference.adapters import GptOssSafeguardAdapter
    from modfleet.inference.vllm_backend import (
        Harmony,
        engine_args,
        engine_prompt,
        harmony_vocabulary_dir,
        sampling_params,
    )

    adapter = create_adapter(settings.inference_adapter, max_tokens=settings.inference_max_tokens)
    harmony = (
        Harmony(harmony_vocabulary_dir(settings))
        if isinstance(adapter, GptOssSafeguardAdapter)
        else None
    )
    llm = LLM(**engine_args(settings, prefix_caching=caching))
    prompts = [engine_prompt(adapter, harmony, policy, t, None) for t in texts]
    params = sampling_params(prompts[0][1], harmony)
    batch_prompts: Any = [p for p, _ in prompts]  # vLLM's prompt dicts (TextPrompt/TokensPrompt)
    llm.generate(batch_prompts[:8], params, use_tqdm=False)  # warm-up: graphs, kernels
    started = time.perf_counter()
    llm.generate(batch_prompts, params, use_tqdm=False)
    return len(texts) / (time.perf_counter() - started)


async def _pipeline(
    settings: Settings, policy: Policy, texts: list[str], batch: int, caching: bool
) -> float:
    from vllm import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    from modfleet.cache import VerdictCache
    from modfleet.emit import Topics
    from modfleet.inference.adapters import GptOssSafeguardAdapter
    from modfleet.inference.vllm_backend import (
        Harmony,
        VLLMClassifier,
        engine_args,
        harmony_vocabulary_dir,
    )
    from modfleet.ingest import Record
    from modfleet.metrics import Metrics
    from modfleet.stream import Pipeline, Retry

    engine = AsyncLLM.from_engine_args(
        AsyncEngineArgs(**engine_args(settings, prefix_caching=caching))
    )
    adapter = create_adapter(settings.inference_adapter, max_tokens=settings.inference_max_tokens)
    # Like the offline run, which admits every prompt at once: no cap below the post count.
    gpt_oss = isinstance(adapter, GptOssSafeguardAdapter)
    harmony = Harmony(harmony_vocabulary_dir(settings)) if gpt_oss else None
    classifier = VLLMClassifier(
        adapter, engine, settings.inference_model, max_in_flight=len(texts), harmony=harmony
    )
    metrics = Metrics()
    pipeline = Pipeline(
        policy,
        classifier,
        VerdictCache(None, 1, metrics),
        metrics,
        Topics("d", "e", "dl"),
        Retry(1, 0.0, 3600.0),
    )
    records = [
        Record(
            "posts",
            0,
            i,
            None,
            None,
            json.dumps(
                {"schema_version": 1, "post_id": f"b-{i}", "tenant": "bench", "text": text}
            ).encode(),
        )
        for i, text in enumerate(texts)
    ]
    await pipeline.process(records[:8])  # warm-up, as offline
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        await pipeline.process(records[i : i + batch])
    elapsed = time.perf_counter() - started
    await classifier.close()
    return len(records) / elapsed


if __name__ == "__main__":
    gpu()
