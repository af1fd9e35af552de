"""``modfleet bench``: the pipeline benchmark, and the group that other benchmarks join.

Imports are deferred to the command body, so that ``modfleet --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click


@click.group(invoke_without_command=True)
@click.option(
    "--posts",
    "posts",
    type=click.IntRange(100),
    default=20_000,
    show_default=True,
    help="Posts in the backlog every stage processes.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench.json"),
    show_default=True,
    help="Where to write the JSON results.",
)
@click.option(
    "--latency-seconds",
    "latency_s",
    type=click.FloatRange(0),
    default=12.0,
    show_default=True,
    help="Length of the latency runs at the pace below (0: none).",
)
@click.option(
    "--repeat",
    "repeat",
    type=click.IntRange(1, 10),
    default=2,
    show_default=True,
    help="Rounds of (b), (c) and (d); each stage keeps its best rate.",
)
@click.option(
    "--soak-minutes",
    "soak_minutes",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help=(
        "Then keep that pace this long, the faust passthrough first, then the worker: RSS "
        "growth, and latency per 30 s window of each. The p99 goal is judged only with "
        "--external-broker: the embedded broker slows as it fills."
    ),
)
@click.option(
    "--pace",
    "pace",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help=(
        "Posts/s of the latency run and the soak (0: half of the 0%-hit rate): the same pace "
        "for two configurations compared."
    ),
)
@click.option(
    "--split-cores/--shared-cores",
    "split_cores",
    default=True,
    show_default=True,
    help=(
        "Run the worker and the faust passthrough on half of the CPUs and the broker, Redis "
        "and the load generator on the other half, so that neither side of a ratio contends "
        "with the broker; shared: every process on every CPU (one CPU: always shared)."
    ),
)
@click.option(
    "--external-broker",
    "external_broker",
    is_flag=True,
    help=(
        "Run against the broker MODFLEET_BROKER_URL names (security from MODFLEET_KAFKA_*), "
        "e.g. docker-compose's Apache Kafka on localhost:9094, not an embedded Tansu: the "
        "soak needs a broker whose fetches do not slow down as it fills. Topics and groups "
        "carry a run id and the topics are deleted at the end; the broker's CPU is not read."
    ),
)
@click.option(
    "--html",
    "as_html",
    is_flag=True,
    help=(
        "Posts written in HTML (a paragraph, a mention link, a character reference), under "
        "a copy of the pack that reads HTML (text.format: html): what a tenant whose "
        "platform writes HTML costs, the renderer's child process included."
    ),
)
@click.pass_context
def bench(
    ctx: click.Context,
    posts: int,
    out: Path,
    latency_s: float,
    repeat: int,
    soak_minutes: float,
    pace: float,
    split_cores: bool,
    external_broker: bool,
    as_html: bool,
) -> None:
    """Benchmark the pipeline on an embedded stack: a table of rates and goals, and JSON.

    Stages, on the same posts and broker: (a) aiokafka passthrough, (b) faust passthrough,
    (c) modfleet with 100% cache hits, (d) modfleet with 0% hits, (e) the model alone; then
    end-to-end latency at half of (d)'s rate. Batch size and the rest come from MODFLEET_*.
    """
    if ctx.invoked_subcommand is not None:
        return
    import orjson

    from modfleet.bench.runner import BenchOptions, run_bench
    from modfleet.errors import ModfleetError
    from modfleet.settings import Settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = BenchOptions(
        posts=posts,
        latency_s=latency_s,
        soak_minutes=soak_minutes,
        repeat=repeat,
        pace=pace,
        split_cores=split_cores,
        external_broker=external_broker,
        as_html=as_html,
    )
    try:
        result = run_bench(options, Settings())
    except (ModfleetError, ValueError) as exc:  # ValueError: invalid MODFLEET_* settings
        click.echo(f"modfleet bench: {exc}", err=True)
        sys.exit(1)
    click.echo(result.table())
    out.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2))
    click.echo(f"wrote {out}")


@bench.command("broker")
@click.option(
    "--pace",
    type=click.FloatRange(1),
    default=1_500.0,
    show_default=True,
    help="Posts/s, sent every 5 ms as the benchmark's load generator sends them.",
)
@click.option(
    "--minutes", type=click.FloatRange(0.05), default=2.0, show_default=True, help="How long."
)
@click.option(
    "--split-cores/--shared-cores",
    "split_cores",
    default=True,
    show_default=True,
    help="The broker on CPUs of its own, as `modfleet bench` places it; shared: every CPU.",
)
def bench_broker(pace: float, minutes: float, split_cores: bool) -> None:
    """The embedded broker alone at a steady pace: how late one consumer reads each post, and
    the broker's share of a core, per window. No faust, no worker: what it shows is the
    broker's."""
    from modfleet.bench.broker import soak_broker
    from modfleet.settings import Settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    click.echo(soak_broker(Settings(), pace, minutes * 60, split_cores).table())


@bench.command(
    "llm",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_llm(args: tuple[str, ...]) -> None:
    """The LLM tier: server saturated (g), a worker through the fleet (h), h/g (see --help)."""
    # Delegated, so that the command's options stay with its code and vLLM loads only there.
    from modfleet.bench.llm import llm

    llm.main(list(args), prog_name="modfleet bench llm")
