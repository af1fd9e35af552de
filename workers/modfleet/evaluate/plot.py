"""The precision-recall plot of a report (PNG), drawn with matplotlib when it is installed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modfleet.evaluate.metrics import LabelMetrics

MISSING = "matplotlib is not installed (pip install 'modfleet[eval]'), so there is no plot"


def plot_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pr_plot(metrics: Sequence[LabelMetrics], path: Path, title: str) -> bool:
    """Write the curves of every scored label to ``path``; False when there is nothing to draw."""
    # The object API, not pyplot: no global figure state and no GUI backend to pick.
    from matplotlib.figure import Figure

    curves = [m for m in metrics if m.curve is not None]
    if not curves:
        return False
    figure = Figure(figsize=(7, 5.5), dpi=110)
    axes = figure.add_subplot()
    for m in curves:
        assert m.curve is not None
        precision, recall = m.curve
        line = axes.plot(recall, precision, drawstyle="steps-post", label=_legend(m))[0]
        if m.recall is not None and m.precision is not None:
            axes.plot([m.recall], [m.precision], "o", color=line.get_color())
        if m.best is not None:
            axes.plot([m.best.recall], [m.best.precision], "*", ms=12, color=line.get_color())
    axes.plot([], [], "o", color="grey", label="the pack's decisions")
    axes.plot([], [], "*", ms=12, color="grey", label="best-F1 threshold")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02), title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    return True


def _legend(m: LabelMetrics) -> str:
    ap = f", AP {m.average_precision:.3f}" if m.average_precision is not None else ""
    return f"{m.label} (F1 {m.f1:.3f}{ap})"
