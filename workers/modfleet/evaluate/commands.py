"""``modfleet eval`` and the body of ``modfleet policy test``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import click

from modfleet.cli_common import load_settings
from modfleet.errors import ModfleetError
from modfleet.evaluate.data import FieldMap, LabelledSet, read_labelled
from modfleet.evaluate.gate import failures, format_results, run_gate
from modfleet.evaluate.metrics import DEFAULT_FLAG_ACTIONS, Spec, below, parse_fail_under
from modfleet.evaluate.report import Report, metrics_table, write_report
from modfleet.evaluate.run import evaluate
from modfleet.inference import create_classifier
from modfleet.policy.load import PolicyInvalid, load_policy
from modfleet.policy.model import SEVERITY, Action, Policy
from modfleet.settings import Settings

T = TypeVar("T")

_BAD_ROWS_ECHOED = 20
_FLAG_DEFAULT = "label,restrict,escalate,remove"


@click.command("eval")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Policy pack [default: MODFLEET_POLICY_PATH, else the bundled default pack].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.json, report.md and pr.png [default: eval-reports/<DATA name>].",
)
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option("--label-field", help="Field with one overall label: does the post break the pack?")
@click.option(
    "--category-field",
    "category_fields",
    multiple=True,
    metavar="CATEGORY[=FIELD]",
    help="A per-category label field (repeatable; a category given several fields is positive "
    "if any is). Without label options: a 'flagged' field, fields named like the pack's "
    "categories, or the only field besides the text.",
)
@click.option(
    "--group-field",
    help="Also report metrics per value of this field (a functionality, a target group).",
)
@click.option(
    "--fail-under",
    "fail_under",
    multiple=True,
    metavar="[LABEL.]METRIC=VALUE",
    help="Exit 3 if a metric (precision, recall, f1, roc_auc, average_precision) of any label, "
    "or of LABEL, is below VALUE; for CI. Repeatable.",
)
@click.option(
    "--positive-value",
    "positive_values",
    multiple=True,
    help="A label value meaning 'violates' (repeatable, any case) [default: true/yes/1].",
)
@click.option("--positive-min", type=float, help="Numeric labels at or above this are positive.")
@click.option("--sep", help="CSV field separator, e.g. ';' or '\\t' [default: ',', tab for .tsv].")
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "jsonl"]), default="auto")
@click.option(
    "--flag-actions",
    default=_FLAG_DEFAULT,
    show_default=True,
    help="Actions that count as flagging a post, comma-separated.",
)
@click.option("--batch-size", type=click.IntRange(1), help="[default: MODFLEET_BATCH_MAX]")
@click.option("--limit", type=click.IntRange(1), help="Evaluate only the first N usable rows.")
@click.option(
    "--strict", is_flag=True, help="Exit 1 on any unusable row instead of leaving it out."
)
@click.option("--title", help="Report title [default: Evaluation of <DATA name>].")
@click.option("--source", help="Where the data comes from and its licence, cited in the report.")
def eval_command(
    data: Path,
    policy_path: Path | None,
    out: Path | None,
    text_field: str,
    label_field: str | None,
    category_fields: tuple[str, ...],
    group_field: str | None,
    fail_under: tuple[str, ...],
    positive_values: tuple[str, ...],
    positive_min: float | None,
    sep: str | None,
    fmt: str,
    flag_actions: str,
    batch_size: int | None,
    limit: int | None,
    strict: bool,
    title: str | None,
    source: str | None,
) -> None:
    """Measure a policy pack and model on a labelled JSONL or CSV file.

    Prints per-label precision, recall, F1, false-flag rate and ROC-AUC, and writes report.json,
    report.md, rows.jsonl (every row's scores and action) and a precision-recall plot into
    --out. Unusable rows are listed with their line numbers.
    """
    minimums = [_fail_spec(spec) for spec in fail_under]
    settings = load_settings()
    fields = FieldMap(
        text=text_field,
        flagged=label_field,
        categories=_category_fields(category_fields),
        positive=frozenset(v.strip() for v in positive_values),
        positive_min=positive_min,
        group=group_field,
    )
    actions = _flag_actions(flag_actions)
    pack_path = policy_path or settings.policy_path
    pack = _load_pack(pack_path)
    labelled = _guard(lambda: read_labelled(data, pack, fields, sep=_separator(sep), fmt=fmt))
    _echo_bad_rows(labelled, strict=strict)
    if labelled.fields.positive != fields.positive:
        found = ", ".join(repr(v) for v in sorted(labelled.fields.positive))
        click.echo(f"labels: {found} read as a violation (--positive-value to choose)", err=True)
    if limit is not None:
        labelled = replace(labelled, rows=labelled.rows[:limit])
    batch = batch_size or settings.batch_max
    report = _run(labelled, pack, pack_path, settings, batch, actions, title, source)
    written = _guard(lambda: write_report(report, out or Path("eval-reports") / data.stem))
    _echo_summary(report, written)
    failed = below(report.metrics, minimums)
    for line in failed:
        click.echo(f"fail-under: {line}", err=True)
    if failed:
        sys.exit(3)


def _run(
    data: LabelledSet,
    pack: Policy,
    pack_path: Path,
    settings: Settings,
    batch_size: int,
    actions: frozenset[Action],
    title: str | None,
    source: str | None,
) -> Report:
    if not data.rows:
        raise click.ClickException(f"{data.path}: no usable rows to evaluate")
    classifier = _guard(lambda: create_classifier(settings))
    with click.progressbar(length=len(data.rows), label="scoring", file=sys.stderr) as bar:
        return _guard(
            lambda: evaluate(
                data,
                pack,
                pack_path,
                classifier,
                batch_size=batch_size,
                flag_actions=actions,
                title=title,
                source=source,
                on_batch=bar.update,
            )
        )


def gate_command(paths: Sequence[Path], *, require_gate: bool) -> int:
    """Run the gate on each pack (the configured pack if none), print the table; the exit code."""
    settings = load_settings()
    packs = list(paths) or [settings.policy_path]
    results = []
    for path in packs:
        click.echo(f"testing {path} ...", err=True)
        results.append(run_gate(path, lambda: create_classifier(settings), settings.batch_max))
    for line in format_results(results, require_gate=require_gate):
        click.echo(line)
    return 1 if failures(results, require_gate=require_gate) else 0


def _load_pack(path: Path) -> Policy:
    try:
        return load_policy(path)
    except PolicyInvalid as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)


def _category_fields(specs: Sequence[str]) -> dict[str, str | tuple[str, ...]]:
    fields: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        category, _, name = spec.partition("=")
        if not category.strip():
            raise click.BadParameter(f"{spec!r}: expected CATEGORY or CATEGORY=FIELD")
        key = category.strip()
        fields[key] = (*fields.get(key, ()), name.strip() or key)
    return {key: names[0] if len(names) == 1 else names for key, names in fields.items()}


def _fail_spec(spec: str) -> Spec:
    try:
        return parse_fail_under(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-under") from exc


def _flag_actions(spec: str) -> frozenset[Action]:
    actions = [a.strip() for a in spec.split(",") if a.strip()]
    allowed: list[Action] = sorted(DEFAULT_FLAG_ACTIONS, key=SEVERITY.__getitem__)
    wrong = [a for a in actions if a not in allowed]
    if wrong or not actions:
        raise click.BadParameter(
            f"{wrong[0] if wrong else spec!r} is not an action that flags; use some of: "
            f"{', '.join(allowed)}",
            param_hint="--flag-actions",
        )
    return frozenset(a for a in allowed if a in actions)


def _separator(sep: str | None) -> str | None:
    if sep is None:
        return None
    sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
    if len(sep) != 1:
        raise click.BadParameter(f"{sep!r} is not one character", param_hint="--sep")
    return sep


def _echo_bad_rows(data: LabelledSet, *, strict: bool) -> None:
    for bad in data.bad[:_BAD_ROWS_ECHOED]:
        click.echo(f"{data.path}:{bad.line}: {bad.reason}", err=True)
    if len(data.bad) > _BAD_ROWS_ECHOED:
        click.echo(f"... and {len(data.bad) - _BAD_ROWS_ECHOED} more unusable rows", err=True)
    if data.bad:
        verdict = "--strict: stopping" if strict else "left out, and listed in the report"
        click.echo(f"{data.path}: {len(data.bad)} unusable rows {verdict}", err=True)
        if strict:
            sys.exit(1)


def _echo_summary(report: Report, written: Sequence[Path]) -> None:
    for line in metrics_table(report.metrics):
        click.echo(line)
    scored = report.scored
    click.echo(
        f"\n{len(scored.scores)} texts in {scored.seconds:.2f} s: {scored.texts_per_s:,.0f} texts/s"
        f" ({report.model_id})"
    )
    for path in written:
        click.echo(f"wrote {path}")


def _guard(action: Callable[[], T]) -> T:
    try:
        return action()
    except ModfleetError as exc:
        raise click.ClickException(str(exc)) from exc
