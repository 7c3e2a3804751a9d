"""Notebook 08's figure: accuracy against latency, one point per model, the Pareto front as a line."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes

from ..language import tr
from .style import FONT_SIZE, OKABE_ITO, _draws_on_axes, _family_color, _log_scale


@_draws_on_axes(figsize=(11, 6.5))
def plot_accuracy_vs_latency(rows: Sequence[dict], title: str | None = None, *, ax: Axes | None = None) -> Axes:
    """Accuracy against batch-1 latency (log axis), one labelled point per model, the Pareto front as a line.

    `rows` are kdlab.deployment.deployment_row dicts (keys model, latency_median_ms, accuracy, size_mb).
    Models of one family share a colour; int8 versions are drawn hollow; marker area grows with size on disk.

    Introduced in notebook 08 (08-Deployment).
    """
    from ..deployment import pareto_front

    if not rows:
        raise ValueError("rows must contain at least one deployment row")
    missing = [key for key in ("model", "latency_median_ms", "accuracy", "size_mb") if key not in rows[0]]
    if missing:
        raise ValueError(f"rows must be kdlab.deployment.deployment_row dicts; missing keys {missing}")
    names = [r["model"] for r in rows]
    latency = np.array([r["latency_median_ms"] for r in rows], dtype=np.float64)
    accuracy = 100 * np.array([r["accuracy"] for r in rows], dtype=np.float64)
    if (latency <= 0).any():
        raise ValueError("latency_median_ms must be > 0 for a log axis")
    # The family is the name's first word ("bag KD student", "bag int8" → bag): one colour per family, as in notebook 06.
    families = [name.replace("int8", "").split()[0] for name in names]
    for name, x, y, r in zip(names, latency, accuracy, rows):
        color = _family_color(name.replace("int8", "").split()[0], families)
        int8 = "int8" in name
        area = 40 + 3 * r["size_mb"]  # marker area grows with MB; the floor keeps tiny models visible
        ax.scatter(x, y, s=area, marker="s" if int8 else "o", facecolor="white" if int8 else color,
                   edgecolor=color, linewidth=2.2, zorder=3)
        ax.annotate(f"{tr(name)}\n{r['size_mb']:.1f} MB", (x, y), xytext=(8, -4 if int8 else 6), textcoords="offset points",
                    fontsize=FONT_SIZE - 3, va="top" if int8 else "bottom")
    front = pareto_front(list(latency), list(accuracy))
    ax.step(latency[front], accuracy[front], where="post", color=OKABE_ITO["black"], linestyle="--", linewidth=1.3,
            zorder=2, label=tr("Pareto front: nothing is both faster and more accurate"))
    ax.scatter([], [], marker="o", color=OKABE_ITO["grey"], label=tr("float32 (filled)"))
    ax.scatter([], [], marker="s", facecolor="white", edgecolor=OKABE_ITO["grey"], linewidth=2, label=tr("int8 (hollow)"))
    _log_scale(ax, "x")
    ax.set_xlim(latency.min() / 1.6, latency.max() * 4)  # room on the right for the labels
    ax.set_ylim(accuracy.min() - 3, accuracy.max() + 4)  # headroom for the top labels
    ax.set_xlabel(tr("latency per query, batch 1, median [ms] (log scale)"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("test accuracy [%]"), fontsize=FONT_SIZE)
    ax.set_title(tr(title) or tr("Accuracy vs speed: which models are worth deploying"), fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)  # below: never on a point
    return ax
