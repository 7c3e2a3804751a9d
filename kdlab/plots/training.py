"""Notebook 05's figures: learning curves of several runs, and which intents KD helped or hurt."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..language import tr
from .style import FONT_SIZE, MODEL_COLORS, OKABE_ITO, _draws_on_axes, _new_axes_grid
from .teacher import confusion_counts


CURVE_COLUMNS = ("epoch", "loss", "ce", "kd", "dev_accuracy")
# One line style and marker per run, on top of its colour: two runs never differ by hue alone.
RUN_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v"))


def curve_series(history) -> dict[str, list[float]]:
    """The columns a learning curve needs, from a kdlab History, its list of epoch dicts, or a dict of lists.

    Introduced in notebook 05 (05-Training-the-Student), drawn by `TrainingDashboard`.
    """
    if hasattr(history, "column"):
        return {name: list(history.column(name)) for name in CURVE_COLUMNS}
    if isinstance(history, list) and all(isinstance(row, dict) for row in history):
        return {name: [row[name] for row in history] for name in CURVE_COLUMNS}
    if isinstance(history, dict) and all(name in history for name in CURVE_COLUMNS):
        return {name: list(history[name]) for name in CURVE_COLUMNS}
    raise ValueError(f"history must be a kdlab History, a list of epoch dicts or a dict with keys {CURVE_COLUMNS}, "
                     f"got {type(history).__name__}")


def plot_learning_curves(
    histories, figure: Figure | None = None, epochs: int | None = None, teacher_accuracy: float | None = None, *,
    axes=None,
) -> Figure:
    """Hard-label CE, the KD term and dev accuracy per epoch for several runs, side by side.

    Each run gets its own colour, line style and marker (solid ●, dashed ■, dotted ▲, …), so runs stay apart in
    grey print and for colour-blind readers, and a run that lies exactly on another still shows through.

    Draws on `axes` (three Axes: CE, KD term, dev accuracy) when given, else on `figure`, else on a new Figure;
    returns the Figure that holds them.

    Introduced in notebook 05 (05-Training-the-Student).
    """
    if not histories:
        raise ValueError("histories must map at least one run name to its History")
    series = {name: curve_series(history) for name, history in histories.items()}
    figure, axes = _new_axes_grid(axes, figure, (1, 3), (15, 4.4), "plot_learning_curves")
    panels = (
        ("ce", "hard-label CE on train [nats]", "Hard-label term (CE)"),
        ("kd", "T²·KL to the teacher on train [nats]", "Soft term (distance from the teacher)"),
        ("dev_accuracy", "dev accuracy [%]", "Dev accuracy after each epoch"),
    )
    for ax, (column, ylabel, title) in zip(axes, panels):
        for n, (name, values) in enumerate(series.items()):
            y = np.asarray(values[column], dtype=np.float64) * (100 if column == "dev_accuracy" else 1)
            linestyle, marker = RUN_STYLES[n % len(RUN_STYLES)]
            ax.plot(values["epoch"], y, marker=marker, linestyle=linestyle, color=MODEL_COLORS[n % len(MODEL_COLORS)],
                    linewidth=max(4.0 - 1.2 * n, 1.6), markersize=max(10 - 2 * n, 5),
                    markerfacecolor="white" if n % 2 else None, label=tr(name))  # later runs thinner, drawn on top
        ax.set_xlabel(tr("epoch"), fontsize=FONT_SIZE)
        ax.set_ylabel(tr(ylabel), fontsize=FONT_SIZE - 1)
        ax.set_title(tr(title), fontsize=FONT_SIZE + 1)
        ax.grid(alpha=0.3)
        if epochs is not None:
            ax.set_xlim(0.5, epochs + 0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if teacher_accuracy is not None:
        axes[2].axhline(100 * teacher_accuracy, color=OKABE_ITO["black"], linestyle="--", linewidth=1.5,
                        label=tr("teacher ({value:.1f}%)", value=100 * teacher_accuracy))
    axes[2].legend(fontsize=FONT_SIZE - 2, loc="lower right")
    return figure


def per_class_accuracy(predictions, labels, num_classes: int) -> np.ndarray:
    """Accuracy of each class on its own gold examples (NaN where a class has none).

    Introduced in notebook 05 (05-Training-the-Student).
    """
    counts = confusion_counts(predictions, labels, num_classes)
    support = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(counts) / np.maximum(support, 1), np.nan)


@_draws_on_axes(figsize=(10, 6.5))
def plot_per_class_change(
    before, after, label_names: Sequence[str], count: int = 12, before_name: str = "CE only",
    after_name: str = "KD", *, ax: Axes | None = None,
) -> Axes:
    """Diverging bars: the intents whose accuracy changed most between two models, gains and losses, by name.

    Gains are blue bars, losses vermillion hatched bars; the legend counts how many intents gained, lost and stayed
    the same in all (not only the ones drawn), so the overall split is on the figure.

    Introduced in notebook 05 (05-Training-the-Student).
    """
    before = np.asarray(before, dtype=np.float64).ravel()
    after = np.asarray(after, dtype=np.float64).ravel()
    if before.shape != after.shape or before.size != len(label_names):
        raise ValueError(f"before ({before.size}), after ({after.size}) and label_names ({len(label_names)}) "
                         "must have one entry per class")
    if count < 2:
        raise ValueError(f"count must be ≥ 2, got {count}")
    change = 100 * np.nan_to_num(after - before)
    order = np.argsort(change, kind="stable")
    losses = [int(i) for i in order[: count // 2] if change[i] < 0]
    gains = [int(i) for i in order[::-1][: count - count // 2] if change[i] > 0]
    shown = gains + losses[::-1]  # biggest gain on top, biggest loss at the bottom
    rows = np.arange(len(shown))[::-1]
    gained, lost = int((change > 0).sum()), int((change < 0).sum())
    unchanged = change.size - gained - lost
    bars = ax.barh(rows, change[shown], color=[OKABE_ITO["blue"] if change[i] > 0 else OKABE_ITO["vermillion"] for i in shown],
                   hatch=["" if change[i] > 0 else "//" for i in shown], edgecolor="white")
    ax.bar_label(bars, labels=[f"{change[i]:+.1f}" for i in shown], padding=3, fontsize=FONT_SIZE - 2)
    ax.set_yticks(rows, [label_names[i] for i in shown], fontsize=FONT_SIZE - 1)
    ax.axvline(0, color=OKABE_ITO["black"], linewidth=0.8)
    limit = max(np.abs(change[shown]).max() if shown else 1.0, 1.0) * 1.3
    ax.set_xlim(-limit, limit)
    ax.set_xlabel(tr("test accuracy change, {after_name} − {before_name} [percentage points]", after_name=tr(after_name), before_name=tr(before_name)), fontsize=FONT_SIZE - 1)
    ax.set_title(tr("Intents that changed most: {after_name} vs {before_name}", after_name=tr(after_name), before_name=tr(before_name)), fontsize=FONT_SIZE + 1)
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.patches import Patch

    ax.legend(handles=[
        Patch(facecolor=OKABE_ITO["blue"], label=tr("gained: {value} ({n_gains} largest shown)", value=_intents(gained), n_gains=len(gains))),
        Patch(facecolor=OKABE_ITO["vermillion"], hatch="//", edgecolor="white",
              label=tr("lost: {value} ({n_losses} largest shown)", value=_intents(lost), n_losses=len(losses))),
        Patch(facecolor="none", edgecolor="none", label=tr("unchanged: {value}", value=_intents(unchanged))),
    ], loc="lower right", fontsize=FONT_SIZE - 2, framealpha=0.95)
    return ax


def _intents(n: int) -> str:
    return tr("{n} intent", n=n) if n == 1 else tr("{n} intents", n=n)
