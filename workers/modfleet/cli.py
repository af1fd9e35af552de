"""The ``modfleet`` command."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from modfleet.bench.commands import bench
from modfleet.cli_common import exit_on_sigterm, guard, load_settings
from modfleet.export.commands import export
from modfleet.model.commands import model
from modfleet.policy.commands import policy
from modfleet.reviews.commands import reviews
from modfleet.shadow.commands import shadow


@click.group()
@click.version_option(package_name="modfleet")
def main() -> None:
    """Moderation worker fleet: Kafka posts in, policy decisions out."""
    exit_on_sigterm()


main.add_command(policy)
main.add_command(shadow)
main.add_command(model)
main.add_command(reviews)
main.add_command(export)


@main.command()
def worker() -> None:
    """Run a stream worker (configured by MODFLEET_* environment variables)."""
    from modfleet.stream.run import run_worker

    run_worker(load_settings())


@main.command()
@click.option(
    "--posts",
    "posts_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL of posts to replay (default: the bundled sample of 2,000).",
)
@click.option("--timeout", "timeout_s", default=300.0, show_default=True, help="Seconds to wait.")
def dev(posts_file: Path | None, timeout_s: float) -> None:
    """Run the embedded stack: broker, Redis, a worker; replay posts; print a summary."""
    from modfleet.stack.dev import SAMPLE_POSTS, StackOptions, run_stack

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = StackOptions(posts_file or SAMPLE_POSTS, timeout_s, load_settings())
    guard(lambda: run_stack(options))


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def replay(args: tuple[str, ...]) -> None:
    """Replay posts from a file or topic at a set rate; report decisions, latency (see --help)."""
    # Delegated, so that the Kafka clients and pyarrow load only for this command.
    from modfleet.replay.command import replay as command

    command.main(list(args), prog_name="modfleet replay")


@main.command(
    "eval",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def eval_(args: tuple[str, ...]) -> None:
    """Measure a policy and model on a labelled JSONL/CSV file; write a report (see --help)."""
    # Delegated, so that scikit-learn and matplotlib load only for this command.
    from modfleet.evaluate.commands import eval_command

    eval_command.main(list(args), prog_name="modfleet eval")


# `modfleet bench` alone runs the pipeline benchmark; benchmarks such as `gpu` are its subcommands.
main.add_command(bench)


@bench.command(
    "gpu",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_gpu(args: tuple[str, ...]) -> None:
    """bench llm on this node's GPU, with GPU-sized defaults (see --help)."""
    # Delegated, so that the command's options stay with its code and vLLM loads only there.
    from modfleet.bench.gpu import gpu

    gpu.main(list(args), prog_name="modfleet bench gpu")


@bench.command("reviews")
@click.option("--decisions", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--reviewed", default=0.1, show_default=True, type=click.FloatRange(0, 1))
def bench_reviews(decisions: int, reviewed: float) -> None:
    """Memory (RSS) of the reviews join holding DECISIONS decisions, a share of them reviewed."""
    from modfleet.reviews.bench import measure, table

    click.echo(table(measure(decisions, reviewed)))


@bench.command("reject")
def bench_reject() -> None:
    """Worst-case time to reject one hostile post, before (jsonschema) and now."""
    from modfleet.bench.reject import measure, table

    click.echo(table(measure()))


@bench.command("backlog")
@click.option("--posts", default=4_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--post-bytes", default=900_000, show_default=True, type=click.IntRange(100, 1_000_000)
)
@click.option(
    "--crowd",
    default=0,
    show_default=True,
    type=click.IntRange(0, 16),
    help="Busy loops sharing the worker's CPU, so that the broker outruns it.",
)
def bench_backlog(posts: int, post_bytes: int, crowd: int) -> None:
    """Peak memory (RSS) of a worker started on a backlog of POSTS large posts."""
    from modfleet.bench.backlog import measure, table

    settings = load_settings()
    result = guard(lambda: measure(posts, post_bytes, crowd, settings))
    click.echo(table(result))
    if result.settled < posts:
        raise click.ClickException(f"only {result.settled} of {posts} posts had an outcome")


@main.group()
def topics() -> None:
    """Work with the topic catalogue."""


@topics.command("create")
@click.option("--replication-factor", type=click.IntRange(1), help="Override the catalogue's.")
@click.option("--partitions", type=click.IntRange(1), help="Override the catalogue's.")
def topics_create(replication_factor: int | None, partitions: int | None) -> None:
    """Create the catalogue's topics that do not exist yet (idempotent)."""
    from modfleet.contracts.admin import create_topics

    settings = load_settings()
    created = guard(
        lambda: asyncio.run(
            create_topics(settings, replication_factor=replication_factor, partitions=partitions)
        )
    )
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")
