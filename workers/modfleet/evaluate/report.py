"""An evaluation's results as files: ``report.json`` for machines, ``report.md`` and ``pr.png``
for people, and ``rows.jsonl``: every row's scores, action and labels, to see why."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modfleet.evaluate.data import LabelledSet
from modfleet.evaluate.metrics import LabelMetrics
from modfleet.evaluate.plot import MISSING, plot_available, pr_plot
from modfleet.evaluate.scoring import Scored
from modfleet.policy.model import SEVERITY, Action, Policy

JSON_NAME, MARKDOWN_NAME, PLOT_NAME, ROWS_NAME = "report.json", "report.md", "pr.png", "rows.jsonl"
_BAD_ROWS_SHOWN = 50
_ESCAPE = "backslashreplace"


@dataclass(frozen=True)
class Report:
    title: str
    source: str | None  # where the data came from and its licence, cited in the report
    data: LabelledSet
    policy: Policy
    policy_path: Path
    model_id: str
    flag_actions: frozenset[Action]
    batch_size: int
    scored: Scored
    metrics: list[LabelMetrics]
    groups: dict[str, list[LabelMetrics]] = field(default_factory=dict)  # --group-field value

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "source": self.source,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": _data_json(self.data),
            "policy": {
                "id": self.policy.id,
                "version": self.policy.version,
                "path": str(self.policy_path),
            },
            "model": self.model_id,
            "flag_actions": _ordered(self.flag_actions),
            "throughput": {
                "texts": len(self.scored.scores),
                "seconds": round(self.scored.seconds, 4),
                "texts_per_s": round(self.scored.texts_per_s, 1),
                "batch_size": self.batch_size,
                "cpus": os.cpu_count(),
                "truncated": self.scored.truncated,
            },
            "metrics": {m.label: m.to_json() for m in self.metrics},
            "groups": {
                value: {m.label: m.to_json() for m in metrics}
                for value, metrics in self.groups.items()
            },
        }

    def row_records(self) -> list[dict[str, Any]]:
        """Per row: where it is, its labels, the pack's scores and action."""
        return [
            {
                "line": row.line,
                "text": row.text,
                "group": row.group,
                "labels": row.labels,
                "scores": {k: round(v, 6) for k, v in scores.items()},
                "action": judgement.action,
                "per_category": judgement.per_category,
            }
            for row, scores, judgement in zip(
                self.data.rows, self.scored.scores, self.scored.judgements, strict=True
            )
        ]


def write_report(report: Report, out: Path) -> list[Path]:
    """Write the report's files into ``out`` (created if need be); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / JSON_NAME, out / MARKDOWN_NAME, out / ROWS_NAME]
    data = report.to_json()
    # Valid JSON input may hold lone surrogates ("\ud800"), which UTF-8 cannot encode; written
    # as backslash escapes they stay the same JSON string, and text for people, readable.
    json_text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    written[0].write_text(json_text, encoding="utf-8", errors=_ESCAPE)
    with written[2].open("w", encoding="utf-8", errors=_ESCAPE) as rows:
        for record in report.row_records():
            rows.write(json.dumps(record, ensure_ascii=False) + "\n")
    plotted = plot_available() and pr_plot(report.metrics, out / PLOT_NAME, _plot_title(report))
    if plotted:
        written.append(out / PLOT_NAME)
    text = markdown(report, data, plotted=plotted)
    written[1].write_text(text, encoding="utf-8", errors=_ESCAPE)
    return written


def markdown(report: Report, data: dict[str, Any], *, plotted: bool) -> str:
    lines = [f"# {report.title}", "", *_summary(report, data), ""]
    lines += ["## Results", "", *metrics_table(report.metrics), ""]
    for value, metrics in report.groups.items():
        lines += [f"### {report.data.fields.group} = {value}", "", *metrics_table(metrics), ""]
    lines += ["## Confusion matrices", "", *_confusion_table(report.metrics), ""]
    lines += ["## Precision and recall", ""]
    if plotted:
        lines += [f"![precision-recall curves]({PLOT_NAME})", "", _plot_legend(), ""]
    else:
        lines += [MISSING if not plot_available() else "No scored label to plot.", ""]
    lines += _bad_rows(report.data)
    return "\n".join(lines).rstrip("\n") + "\n"


def metrics_table(metrics: Sequence[LabelMetrics]) -> list[str]:
    lines = [
        "| label | positives | negatives | precision | recall | F1 | false flags | ROC-AUC "
        "| avg precision | best-F1 threshold (P / R / F1) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for m in metrics:
        if not m.scored:
            lines.append(f"| {m.label} | {m.positives} | {m.negatives} | {m.note} |||||||")
            continue
        lines.append(
            f"| {m.label} | {m.positives} | {m.negatives} | {_n(m.precision)} | {_n(m.recall)} "
            f"| **{_n(m.f1)}** | {_n(m.false_flag_rate)} | {_n(m.roc_auc)} "
            f"| {_n(m.average_precision)} | {_best(m)} |"
        )
    return lines


def _best(m: LabelMetrics) -> str:
    b = m.best
    return f"{b.threshold:.3f} ({_n(b.precision)} / {_n(b.recall)} / {_n(b.f1)})" if b else "-"


def _summary(report: Report, data: dict[str, Any]) -> list[str]:
    d, t = data["data"], data["throughput"]
    fields = ", ".join(
        f"`{label}` ← {' or '.join(f'`{n}`' for n in names)}"
        for label, names in d["fields"]["labels"].items()
    )
    lines = [f"- **Source**: {report.source}"] if report.source else []
    lines += [
        f"- **Data**: `{d['path']}`: {d['evaluated']} rows evaluated{_left_out(d)}.",
        f"- **Labels**: text from `{d['fields']['text']}`; {fields}{_positive(d['fields'])}.",
        f"- **Policy**: `{report.policy.id}` {report.policy.version} (`{report.policy_path}`).",
        f"- **Model**: `{report.model_id}`.",
        f"- **Flagged** means the pack's action is one of: {', '.join(data['flag_actions'])}.",
        f"- **Throughput**: {t['texts_per_s']:,.0f} texts/s ({t['texts']} texts in "
        f"{t['seconds']:.2f} s, batches of {t['batch_size']}, {t['cpus']} CPUs; normalise, "
        f"classify and decide, model loading excluded).",
        f"- **Created**: {data['created']} by `modfleet eval`.",
    ]
    if t["truncated"]:
        lines.append(
            f"- {t['truncated']} texts were longer than the pack reads (`max_windows` windows "
            "of `max_text_chars`): the model read their beginning and end."
        )
    return lines


def _left_out(d: dict[str, Any]) -> str:
    bad = len(d["bad_rows"])
    return f", {bad} unusable rows left out (listed below)" if bad else ", none unusable"


def _positive(fields: dict[str, Any]) -> str:
    if fields["positive_values"]:
        return f" (positive: {', '.join(repr(v) for v in fields['positive_values'])})"
    if fields["positive_min"] is not None:
        return f" (positive: >= {fields['positive_min']})"
    return ""


def _confusion_table(metrics: Sequence[LabelMetrics]) -> list[str]:
    lines = ["| label | TP | FP | FN | TN |", "|---|--:|--:|--:|--:|"]
    for m in metrics:
        c = m.confusion
        cells = f"{c.tp} | {c.fp} | {c.fn} | {c.tn}" if c else "unscored | | |"
        lines.append(f"| {m.label} | {cells} |")
    return lines


def _bad_rows(data: LabelledSet) -> list[str]:
    if not data.bad:
        return ["## Unusable rows", "", "None."]
    lines = ["## Unusable rows", ""]
    lines += [f"- {bad}" for bad in data.bad[:_BAD_ROWS_SHOWN]]
    if len(data.bad) > _BAD_ROWS_SHOWN:
        lines.append(f"- … and {len(data.bad) - _BAD_ROWS_SHOWN} more, listed in `{JSON_NAME}`.")
    return lines


def _plot_legend() -> str:
    return (
        "Each curve sweeps one threshold over the label's score (flag at score >= threshold). "
        "A dot marks what the pack's own thresholds give; a star the threshold with the best F1."
    )


def _plot_title(report: Report) -> str:
    return f"{report.title}\n{report.policy.id} {report.policy.version} · {report.model_id}"


def _data_json(data: LabelledSet) -> dict[str, Any]:
    f = data.fields
    return {
        "path": str(data.path),
        "evaluated": len(data.rows),
        "bad_rows": [{"line": b.line, "reason": b.reason} for b in data.bad],
        "fields": {
            "text": f.text,
            "labels": f.label_fields(),
            "positive_values": sorted(f.positive),
            "positive_min": f.positive_min,
            "group": f.group,
        },
        "label_values": data.values,
    }


def _ordered(actions: frozenset[Action]) -> list[str]:
    return sorted(actions, key=SEVERITY.__getitem__)


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
