"""Figures of notebooks 09 and 10: an omitted intent, calibration (09), DistilBERT-style students (10).

Rows come from kdlab.omitted_class, kdlab.calibration, kdlab.tuning or benchmarks/kd_quality.py's JSON.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..language import tr
from .style import FONT_SIZE, MODEL_COLORS, OKABE_ITO, _draws_on_axes, _new_axes_grid, check_rows


def _mean_std_by(rows: Sequence[dict], keys: Sequence[str], value: str) -> dict[tuple, tuple[float, float, int]]:
    """(mean, std over seeds — 0 for one —, count) of `value` for each combination of `keys`, in first-seen order."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(float(row[value]))
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) for key, v in groups.items()}


@_draws_on_axes(figsize=(10, 6.5))
def plot_soft_mass_on_class(
    mass: np.ndarray, label_names: Sequence[str], class_index: int, temperature: float, top: int = 12,
    color: str = OKABE_ITO["blue"], *, ax: Axes | None = None,
) -> Axes:
    """Bars: the probability one class receives from each *other* intent's training queries, summed — the hints left
    about an intent when all its own examples are gone. `mass[c]` is that sum over gold class c (c = class_index is skipped).

    Introduced in notebook 09 (09-What-Soft-Targets-Carry).
    """
    mass = np.asarray(mass, dtype=np.float64).ravel()
    if mass.size != len(label_names):
        raise ValueError(f"mass has {mass.size} entries but label_names has {len(label_names)}; one per class")
    if not 0 <= class_index < mass.size:
        raise ValueError(f"class_index must be in [0, {mass.size}), got {class_index}")
    if top < 1:
        raise ValueError(f"top must be ≥ 1, got {top}")
    others = np.where(np.arange(mass.size) == class_index, -np.inf, np.nan_to_num(mass))
    shown = [int(i) for i in np.argsort(-others, kind="stable")[: min(top, mass.size - 1)]]
    rows = np.arange(len(shown))[::-1]  # largest on top
    bars = ax.barh(rows, mass[shown], color=color)
    ax.bar_label(bars, labels=[f"{mass[i]:.1f}" for i in shown], padding=3, fontsize=FONT_SIZE - 2)
    ax.set_yticks(rows, [label_names[i] for i in shown], fontsize=FONT_SIZE - 1)
    ax.set_xlim(0, mass[shown].max() * 1.15 if mass[shown].max() > 0 else 1.0)
    name = label_names[class_index]
    ax.set_xlabel(tr("summed probability on {name} at T = {temperature:g} [examples' worth]", name=name, temperature=temperature), fontsize=FONT_SIZE - 1)
    total = float(np.nansum(np.delete(mass, class_index)))
    ax.set_title(tr("Hints about {name} hidden in other intents' soft targets\n(top {n_shown} intents; all {value} "
                    "together: {total:.1f} examples' worth)",
                    name=name,
                    n_shown=len(shown),
                    value=mass.size - 1,
                    total=total), fontsize=FONT_SIZE + 1)
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_bias_shift_scan(
    scans: dict, class_name: str, chosen_shift: float | None = None, figure: Figure | None = None, *, axes=None,
) -> Figure:
    """Two panels against the bias shift: the omitted class's recall and precision, and overall accuracy (all on dev).

    `scans` maps a model name to kdlab.omitted_class.bias_shift_scan's table (columns shift, accuracy,
    class_recall, class_precision); `chosen_shift` is drawn as a dashed vertical line.

    Draws on `axes` (two Axes: the omitted intent, overall accuracy) when given, else on `figure`, else on a new Figure;
    returns the Figure that holds them.

    Introduced in notebook 09 (09-What-Soft-Targets-Carry).
    """
    if not scans:
        raise ValueError("scans must map at least one model name to its bias-shift scan")
    needed = ("shift", "accuracy", "class_recall", "class_precision")
    for name, scan in scans.items():
        missing = [c for c in needed if c not in scan]
        if missing:
            raise ValueError(f"scan of {name!r} lacks columns {missing}; make it with kdlab.omitted_class.bias_shift_scan")
    figure, (left, right) = _new_axes_grid(axes, figure, (1, 2), (14, 4.8), "plot_bias_shift_scan", sharex=True)
    for n, (name, scan) in enumerate(scans.items()):
        color = MODEL_COLORS[n % len(MODEL_COLORS)]
        shift = np.asarray(scan["shift"], dtype=np.float64)
        left.plot(shift, 100 * np.asarray(scan["class_recall"]), color=color, linewidth=2.5, marker="o", markersize=4,
                  label=tr("{name}: recall", name=tr(name)))
        left.plot(shift, 100 * np.asarray(scan["class_precision"]), color=color, linewidth=2, linestyle="--",
                  label=tr("{name}: precision", name=tr(name)))
        right.plot(shift, 100 * np.asarray(scan["accuracy"]), color=color, linewidth=2.5, marker="o", markersize=4, label=tr(name))
    for ax in (left, right):
        if chosen_shift is not None:
            ax.axvline(chosen_shift, color=OKABE_ITO["black"], linestyle=":", linewidth=1.6,
                       label=tr("shift chosen on dev: +{chosen_shift:g}", chosen_shift=chosen_shift))
        ax.set_xlabel(tr("bias added to the {class_name} logit [logit units]", class_name=class_name), fontsize=FONT_SIZE)
        ax.grid(alpha=0.3)
    left.set_ylim(-3, 105)
    left.set_ylabel(tr("{class_name} on dev [%]", class_name=class_name), fontsize=FONT_SIZE)
    left.set_title(tr("Recall and precision of the omitted intent"), fontsize=FONT_SIZE + 1)
    right.set_ylabel(tr("dev accuracy, all intents [%]"), fontsize=FONT_SIZE)
    right.set_title(tr("Overall accuracy: what the dev set chooses by"), fontsize=FONT_SIZE + 1)
    for ax in (left, right):  # below the panels: the curves fill the whole plotting area
        ax.legend(fontsize=FONT_SIZE - 2, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    return figure


OMITTED_CLASS_BARS = (("CE only", "test_recall_as_trained", "CE only"), ("KD", "test_recall_as_trained", "KD as trained"),
                      ("KD", "test_recall_after_shift", "KD after the bias shift chosen on dev"))


@_draws_on_axes(figsize=(11, 5.2))
def plot_omitted_class_recall(rows: Sequence[dict], title: str | None = None, *, ax: Axes | None = None) -> Axes:
    """Grouped bars per omitted intent: recall on TEST of the CE-only student, the KD student, and the KD student after
    the bias shift chosen on dev (mean over seeds; error bars = std over seeds). Rows as benchmarks/kd_quality.py saves them.

    Introduced in notebook 09 (09-What-Soft-Targets-Carry).
    """
    rows = check_rows(rows, ("class", "method", "test_recall_as_trained", "test_recall_after_shift"), "omit-class")
    classes = list(dict.fromkeys(r["class"] for r in rows))
    colors = [OKABE_ITO[c] for c in ("grey", "sky", "blue")]
    width = 0.8 / len(OMITTED_CLASS_BARS)
    seeds = 1
    for b, (method, column, label) in enumerate(OMITTED_CLASS_BARS):
        stats = _mean_std_by([r for r in rows if r["method"] == method], ["class"], column)
        means = np.array([100 * stats[(c,)][0] if (c,) in stats else np.nan for c in classes])
        stds = np.array([100 * stats[(c,)][1] if (c,) in stats else 0.0 for c in classes])
        seeds = max([seeds] + [stats[(c,)][2] for c in classes if (c,) in stats])
        x = np.arange(len(classes)) + (b - (len(OMITTED_CLASS_BARS) - 1) / 2) * width
        bars = ax.bar(x, np.nan_to_num(means), width, color=colors[b], label=tr(label),
                      yerr=stds if stds.any() else None, capsize=4, error_kw={"elinewidth": 1.2})
        ax.bar_label(bars, labels=[f"{m:.0f}" for m in means], padding=5, fontsize=FONT_SIZE - 2)
    ax.set_xticks(range(len(classes)), classes, fontsize=FONT_SIZE - 1)
    ax.set_ylim(0, 125)  # headroom: labels above 100 % error bars stay clear of the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_xlabel(tr("intent left out of the training set"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("recall of that intent on test [%]"), fontsize=FONT_SIZE)
    spread = tr("mean of {seeds} seeds, bars ± std", seeds=seeds) if seeds > 1 else tr("1 seed")
    ax.set_title(tr(title) or tr("Recognising an intent never seen in training ({spread})", spread=spread), fontsize=FONT_SIZE + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper left", ncol=len(OMITTED_CLASS_BARS))
    return ax


@_draws_on_axes(figsize=(4.6, 5.4))
def plot_reliability_diagram(
    bins, name: str, color: str = OKABE_ITO["blue"], min_count: int = 10, *, ax: Axes | None = None,
) -> Axes:
    """Accuracy per confidence bin as bars against the diagonal of perfect calibration; the gap to each bin's mean
    confidence hatched. Bins with fewer than `min_count` predictions are drawn pale: their accuracy is mostly noise.
    `bins` is kdlab.calibration.reliability_bins(...) (edges, confidence, accuracy, count).

    Introduced in notebook 09 (09-What-Soft-Targets-Carry), drawn by `plot_reliability_diagrams`.
    """
    edges = np.asarray(bins.edges, dtype=np.float64)
    accuracy = np.asarray(bins.accuracy, dtype=np.float64)
    confidence = np.asarray(bins.confidence, dtype=np.float64)
    count = np.asarray(bins.count, dtype=np.float64)
    if not (len(edges) - 1 == len(accuracy) == len(confidence) == len(count)):
        raise ValueError("bins must have one more edge than it has accuracy, confidence and count entries")
    filled = count > 0
    left, width = 100 * edges[:-1][filled], 100 * np.diff(edges)[filled]
    acc, conf = 100 * accuracy[filled], 100 * confidence[filled]
    few = count[filled] < min_count
    ax.bar(left[~few], acc[~few], width[~few], align="edge", color=color, edgecolor="white", label=tr("accuracy in the bin"))
    if few.any():
        ax.bar(left[few], acc[few], width[few], align="edge", color=color, alpha=0.3, edgecolor="white",
               label=tr("… in a bin of < {min_count} queries (noisy)", min_count=min_count))
    ax.bar(left, conf - acc, width, bottom=acc, align="edge", color="none", edgecolor=OKABE_ITO["vermillion"],
           hatch="//", linewidth=1.0, label=tr("gap to its mean confidence"))
    ax.plot([0, 100], [0, 100], color=OKABE_ITO["black"], linestyle="--", linewidth=1.3, label=tr("perfect calibration"))
    ece = float((np.abs(accuracy[filled] - confidence[filled]) * count[filled]).sum() / count.sum())
    top = count[-1] / count.sum()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel(tr("confidence (top-1 probability) [%]"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("accuracy [%]"), fontsize=FONT_SIZE)
    ax.set_title(tr("{name}\nECE {value:.1f} %, {top:.0%} of queries in the top bin", name=tr(name), value=100 * ece, top=top), fontsize=FONT_SIZE)
    ax.grid(alpha=0.3)
    return ax


def plot_reliability_diagrams(bins_by_model: dict, figure: Figure | None = None, *, axes=None) -> Figure:
    """One reliability diagram per model, side by side, one legend for all.

    Draws on `axes` (one Axes per model) when given, else on `figure`, else on a new Figure;
    returns the Figure that holds them.

    Introduced in notebook 09 (09-What-Soft-Targets-Carry).
    """
    if not bins_by_model:
        raise ValueError("bins_by_model must map at least one model name to its reliability bins")
    figure, axes = _new_axes_grid(axes, figure, (1, len(bins_by_model)), (4.6 * len(bins_by_model), 5.4),
                                  "plot_reliability_diagrams")
    for n, (ax, (name, bins)) in enumerate(zip(axes, bins_by_model.items())):
        plot_reliability_diagram(ax, bins, name)
        if n:
            ax.set_ylabel("")
    legend = {}  # one entry per label, whichever panel drew it
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=4, fontsize=FONT_SIZE - 1)
    figure.suptitle(tr("Reliability on dev: when the model says p %, is it right p % of the time?"), fontsize=FONT_SIZE + 2)
    return figure


CALIBRATION_PANELS = (
    ("ece", "expected calibration error [%]", "Calibration error (lower is better)"),
    ("overconfidence", "mean confidence − accuracy [points]", "Over- (> 0) or under-confident (< 0)"),
    ("agreement_with_teacher", "top-1 agreement with the teacher [%]", "Same top intent as the teacher"),
)


def plot_calibration_vs_temperature(rows: Sequence[dict], figure: Figure | None = None, title: str | None = None, *,
                                    axes=None) -> Figure:
    """ECE, over-confidence and agreement with the teacher on dev against the distillation temperature T of KD
    students (mean ± std over seeds), with the teacher and the CE-only student as horizontal lines.

    Rows as kdlab.tuning.calibration_by_temperature returns them (model, temperature, dev_accuracy, ece,
    mean_confidence, agreement_with_teacher; the temperature of the teacher and CE-only rows is ignored).

    Draws on `axes` (three Axes, one per panel) when given, else on `figure`, else on a new Figure;
    returns the Figure that holds them.

    Introduced in notebook 09 (09-What-Soft-Targets-Carry).
    """
    rows = check_rows(rows, ("model", "temperature", "dev_accuracy", "ece", "mean_confidence", "agreement_with_teacher"),
                       "calibration")
    for r in rows:
        r["overconfidence"] = r["mean_confidence"] - r["dev_accuracy"]
    kd = [r for r in rows if r["model"] == "KD"]
    if not kd:
        raise ValueError("rows hold no KD student: nothing to draw against the temperature")
    figure, axes = _new_axes_grid(axes, figure, (1, len(CALIBRATION_PANELS)), (15, 4.6), "plot_calibration_vs_temperature")
    references = {"teacher": (OKABE_ITO["black"], ":"), "CE only": (OKABE_ITO["vermillion"], "--")}
    for ax, (column, ylabel, panel_title) in zip(axes, CALIBRATION_PANELS):
        stats = _mean_std_by(kd, ["temperature"], column)
        keys = sorted(stats, key=lambda key: float(key[0]))
        temperatures = np.array([float(key[0]) for key in keys])
        mean = np.array([100 * stats[key][0] for key in keys])
        std = np.array([100 * stats[key][1] for key in keys])
        ax.errorbar(temperatures, mean, yerr=std, color=OKABE_ITO["blue"], marker="o", linewidth=2.5,
                    capsize=4, label=tr("KD student trained at temperature T (mean ± std over seeds)"))
        for model, (color, style) in references.items():
            if column == "agreement_with_teacher" and model == "teacher":
                continue  # always 100 %: it is the reference
            values = [r[column] for r in rows if r["model"] == model]
            if values:
                ax.axhline(100 * float(np.mean(values)), color=color, linestyle=style, linewidth=2,
                           label=tr("CE-only student") if model == "CE only" else tr(model))
        if column == "overconfidence":
            ax.axhline(0, color=OKABE_ITO["grey"], linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
        ax.set_xlabel(tr("distillation temperature T (log scale)"), fontsize=FONT_SIZE)
        ax.set_ylabel(tr(ylabel), fontsize=FONT_SIZE - 1)
        ax.set_title(tr(panel_title), fontsize=FONT_SIZE + 1)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # the first panel draws all three
    figure.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=FONT_SIZE - 1)
    seeds = max(stats[key][2] for key in stats)
    figure.suptitle(tr(title) or tr("How the temperature of training shapes calibration (dev, {seeds} seed(s))", seeds=seeds),
                    fontsize=FONT_SIZE + 2)
    return figure


DISTILBERT_STARTS = ("teacher layers", "random init")


DISTILBERT_LOSSES = ("logits only", "logits + cosine")


@_draws_on_axes(figsize=(8.5, 5))
def plot_distilbert_comparison(
    rows: Sequence[dict], title: str | None = None, teacher_accuracy: float | None = None, *,
    ax: Axes | None = None,
) -> Axes:
    """Grouped bars: dev accuracy of encoder students by how they start (teacher layers vs random init) and what
    they learn from (logits only vs logits + cosine hidden-state loss); mean over seeds, error bars = std.
    Rows as kdlab.tuning.distilbert_comparison returns them (start, loss, dev_accuracy).

    Introduced in notebook 10 (10-DistilBERT-and-Scale-Out).
    """
    rows = check_rows(rows, ("start", "loss", "dev_accuracy"), "DistilBERT comparison")
    starts = [s for s in DISTILBERT_STARTS if any(r["start"] == s for r in rows)]
    losses = [l for l in DISTILBERT_LOSSES if any(r["loss"] == l for r in rows)]
    stats = _mean_std_by(rows, ["start", "loss"], "dev_accuracy")
    colors = [OKABE_ITO["sky"], OKABE_ITO["blue"]]
    width = 0.8 / max(len(losses), 1)
    for b, loss in enumerate(losses):
        means = np.array([100 * stats[(s, loss)][0] if (s, loss) in stats else np.nan for s in starts])
        stds = np.array([100 * stats[(s, loss)][1] if (s, loss) in stats else 0.0 for s in starts])
        x = np.arange(len(starts)) + (b - (len(losses) - 1) / 2) * width
        bars = ax.bar(x, np.nan_to_num(means), width, color=colors[b % 2], label=tr("trained on {loss}", loss=tr(loss)),
                      yerr=stds if stds.any() else None, capsize=4)
        ax.bar_label(bars, labels=[f"{m:.1f}" for m in means], padding=5, fontsize=FONT_SIZE - 1)
    if teacher_accuracy is not None:
        ax.axhline(100 * teacher_accuracy, color=OKABE_ITO["black"], linestyle="--", linewidth=1.5,
                   label=tr("teacher ({value:.1f})", value=100 * teacher_accuracy))
    ax.set_xticks(range(len(starts)), [tr("start: {start}", start=tr(s)) for s in starts], fontsize=FONT_SIZE)
    ax.set_ylim(0, 105)
    ax.set_ylabel(tr("dev accuracy [%]"), fontsize=FONT_SIZE)
    seeds = max(n for _, _, n in stats.values())
    ax.set_title(tr(title) or tr("DistilBERT's two ideas, one at a time ({seeds} seed(s))", seeds=seeds), fontsize=FONT_SIZE + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper right")
    return ax
