"""Figures of notebooks 06 and 07: T × λ sweeps and overfitting remedies (06), label budgets and student sizes (07).

Every function takes the rows kdlab.tuning (or a benchmark JSON's "rows") produces.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..language import tr
from ..tuning import HONEST_KD
from .style import CE_COLOR, FONT_SIZE, KD_COLOR, OKABE_ITO, _draws_on_axes, _family_color, _new_axes_grid, _log_scale


def _tuning_frame(rows, columns: Sequence[str], name: str = "rows"):
    """Rows (a DataFrame or a list of dicts, e.g. a benchmark JSON's 'rows') as a DataFrame with the needed columns."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValueError(f"{name} must contain at least one row")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing the columns {missing}; it has {list(frame.columns)}")
    return frame


@_draws_on_axes(figsize=(8, 6.5))
def plot_sweep_heatmap(rows, title: str | None = None, colorbar: bool = True, *, share_scale: bool = True,
                       ax: Axes | None = None) -> Axes:
    """Mean dev accuracy for every (T, λ) as a heat map; each cell says 'mean ± std over seeds'; the best cell is outlined.

    `rows` are kdlab.tuning.sweep_temperature_lambda rows (temperature, lam, seed, dev_accuracy). The outlined cell
    is kdlab.tuning.best_setting's choice, so the picture and the chosen setting always agree. Heat maps drawn on
    one Figure share one colour scale and one colour bar (`share_scale=False` gives this one its own), so the same
    colour means the same accuracy in every panel.

    Introduced in notebook 06 (06-Validation-and-Tuning).
    """
    from matplotlib.patches import Rectangle

    from ..tuning import best_setting, summarize

    frame = _tuning_frame(rows, ("temperature", "lam", "seed", "dev_accuracy"))
    summary = summarize(frame, ["temperature", "lam"])
    temperatures, lams = sorted(summary["temperature"].unique()), sorted(summary["lam"].unique())
    mean = 100 * summary.pivot(index="temperature", columns="lam", values="mean").reindex(index=temperatures, columns=lams)
    std = 100 * summary.pivot(index="temperature", columns="lam", values="std").reindex(index=temperatures, columns=lams)
    image = ax.imshow(mean.to_numpy(), cmap="cividis", origin="lower", aspect="auto")
    seeds = int(frame["seed"].nunique())
    cells = []
    for i in range(len(temperatures)):
        for j in range(len(lams)):
            value = mean.iat[i, j]
            if np.isnan(value):
                continue
            text = f"{value:.1f}" + (f"\n± {std.iat[i, j]:.1f}" if seeds > 1 else "")
            cells.append((ax.text(j, i, text, ha="center", va="center", fontsize=FONT_SIZE - 1), value))
    best = best_setting(frame)
    ax.add_patch(Rectangle((lams.index(best["lam"]) - 0.5, temperatures.index(best["temperature"]) - 0.5), 1, 1,
                           fill=False, edgecolor=OKABE_ITO["vermillion"], linewidth=3.5, label=tr("best mean on dev")))
    ax.set_xticks(range(len(lams)), [f"{lam:g}" for lam in lams], fontsize=FONT_SIZE)
    ax.set_yticks(range(len(temperatures)), [f"{t:g}" for t in temperatures], fontsize=FONT_SIZE)
    ax.set_xlabel(tr("λ = weight on the hard-label CE term (1 − λ on the soft term)"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("temperature T"), fontsize=FONT_SIZE)
    spread = tr("mean ± std over {seeds} seeds", seeds=seeds) if seeds > 1 else tr("1 seed")
    ax.set_title(tr(title) or tr("Dev accuracy [%] for each T × λ ({spread})", spread=spread), fontsize=FONT_SIZE + 1)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), fontsize=FONT_SIZE - 2, frameon=False)
    panel = _SweepPanel(ax, image, cells, colorbar)
    panels = [p for p in getattr(ax.figure, "_kdlab_sweep_panels", []) if p.ax in ax.figure.axes] if share_scale else []
    panels.append(panel)
    if share_scale:
        ax.figure._kdlab_sweep_panels = panels
    _share_colour_scale(panels)
    return ax


class _SweepPanel:
    """One drawn sweep heat map: what a later panel on the same Figure needs to put both on one colour scale."""

    def __init__(self, ax, image, cells, wants_colorbar: bool):
        self.ax, self.image, self.cells, self.wants_colorbar, self.colorbar = ax, image, cells, wants_colorbar, None


def _share_colour_scale(panels: list[_SweepPanel]) -> None:
    """One vmin/vmax over every panel's cells, text colour by that scale, and one colour bar beside them all."""
    values = [value for panel in panels for _, value in panel.cells]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    for panel in panels:
        panel.image.set_clim(low, high if high > low else low + 1e-9)
        for text, value in panel.cells:
            # dark text on the light (yellow) end of cividis, white on the dark (blue) end
            light = high > low and (value - low) / (high - low) > 0.55
            text.set_color(OKABE_ITO["black"] if light else "white")
        if panel.colorbar is not None:
            panel.colorbar.remove()
            panel.colorbar = None
    if any(panel.wants_colorbar for panel in panels):
        bar = panels[-1].ax.figure.colorbar(panels[-1].image, ax=[panel.ax for panel in panels], shrink=0.9)
        bar.set_label(tr("mean dev accuracy [%], one scale") if len(panels) > 1 else tr("mean dev accuracy [%]"),
                      fontsize=FONT_SIZE)
        for panel in panels:
            panel.colorbar = bar if panel is panels[-1] else None


def _budget_summary(frame):
    """Mean and std (0 for one seed) of dev accuracy per (labels_per_class, labelled, method), fewest labels first."""
    summary = (frame.groupby(["labels_per_class", "labelled", "method"], sort=False)["dev_accuracy"]
               .agg(["mean", "std"]).reset_index())
    summary["std"] = summary["std"].fillna(0.0)
    summary["labelled"] = summary["labelled"].astype(int)  # grouping next to the mixed K column ('all') leaves objects
    return summary.sort_values(["labelled", "method"], kind="stable").reset_index(drop=True)


@_draws_on_axes(figsize=(12, 6.5))
def plot_label_budget(
    rows, live_rows=None, teacher_accuracy: float | None = None, title: str | None = None,
    live_name: str = "this notebook", *, ax: Axes | None = None,
) -> Axes:
    """Dev accuracy against the number of labelled training queries (log axis), CE only vs KD, gap written above.

    `rows` are kdlab.tuning.low_label_curve rows (labels_per_class, labelled, method, seed, dev_accuracy); error bars
    are the std over seeds. `live_rows` (same columns, e.g. this notebook's own small run) are drawn as hollow markers
    labelled `live_name`.

    Introduced in notebook 07 (07-Few-Labels-and-Capacity).
    """
    frame = _tuning_frame(rows, ("labels_per_class", "labelled", "method", "seed", "dev_accuracy"))
    summary = _budget_summary(frame)
    # the honest arm is KD too (KD's colour), from another teacher: told apart by a dashed line and square markers
    styles = {"CE only": (CE_COLOR, "-", "o"), "KD": (KD_COLOR, "-", "o"), HONEST_KD: (KD_COLOR, "--", "s")}
    colors = {method: style[0] for method, style in styles.items()}
    seeds = int(frame["seed"].nunique())
    for method, part in summary.groupby("method", sort=False):
        color, linestyle, marker = styles.get(method, (OKABE_ITO["grey"], "-", "o"))
        ax.errorbar(part["labelled"], 100 * part["mean"], yerr=100 * part["std"], color=color, linestyle=linestyle,
                    marker=marker, markersize=8, linewidth=2.5, capsize=4,
                    label=tr("{method} (benchmark, mean ± std over {seeds} seeds)", method=tr(method), seeds=seeds) if seeds > 1
                    else tr("{method} (benchmark, 1 seed)", method=tr(method)))
    wide = summary.pivot(index="labelled", columns="method", values="mean")
    if {"CE only", "KD"} <= set(wide.columns):
        for labelled, row in wide.iterrows():
            # a dotted bracket from CE to KD, the gap written beside its middle
            ce, kd = 100 * row["CE only"], 100 * row["KD"]
            ax.plot([labelled, labelled], [ce, kd], color=OKABE_ITO["grey"], linestyle=":", linewidth=1.5, zorder=1)
            ax.annotate(f"{kd - ce:+.1f}", (labelled, (ce + kd) / 2), xytext=(9, 0), textcoords="offset points",
                        ha="left", va="center", fontsize=FONT_SIZE, fontweight="bold", color=OKABE_ITO["black"])
    if live_rows is not None:
        live = _budget_summary(_tuning_frame(live_rows, ("labels_per_class", "labelled", "method", "seed", "dev_accuracy"),
                                             "live_rows"))
        for method, part in live.groupby("method", sort=False):
            ax.scatter(part["labelled"], 100 * part["mean"], s=160, facecolor="white", linewidth=2.5, zorder=4,
                       edgecolor=colors.get(method, OKABE_ITO["grey"]), marker="s" if method == HONEST_KD else "D",
                       label=f"{tr(method)} ({tr(live_name)})")
    if teacher_accuracy is not None:
        ax.axhline(100 * teacher_accuracy, color=OKABE_ITO["black"], linestyle="--", linewidth=1.5,
                   label=tr("teacher ({value:.1f}%)", value=100 * teacher_accuracy))
    ticks = summary.drop_duplicates("labelled")
    ax.set_xscale("log")
    ax.set_xlim(ticks["labelled"].min() / 1.4, ticks["labelled"].max() * 1.6)  # room for the gap on the right
    ax.set_xticks(ticks["labelled"], [tr("{k}/intent\n{n:,}", k=k, n=n) if k != "all" else tr("all\n{n:,}", n=n)
                                      for k, n in zip(ticks["labels_per_class"], ticks["labelled"])], fontsize=FONT_SIZE - 1)
    ax.minorticks_off()
    low = 100 * (summary["mean"] - summary["std"]).min()
    ax.set_ylim(max(0.0, low - 8), 100)
    ax.set_xlabel(tr("labelled training queries (log scale): K per intent, and in total"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("dev accuracy [%]"), fontsize=FONT_SIZE)
    ax.set_title(tr(title) or tr("Few labels: CE only vs KD with the rest of train as unlabelled transfer set\n(bold "
                             "numbers: KD − CE in percentage points; dashed: teacher head on the same K labels)"),
                 fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="lower right")
    return ax


def _short_student_name(name: str, kind: str) -> str:
    return name[len(kind):].strip() if name.startswith(kind) else name


def plot_capacity(rows, teacher: dict | None = None, figure: Figure | None = None, title: str | None = None, *,
                  axes=None) -> Figure:
    """Students of several sizes: dev accuracy against trainable parameters, one line per family and method.

    `rows` are kdlab.tuning.capacity_curve rows (student, kind, params, method, seed, dev_accuracy; an
    examples_per_s column is ignored). One colour per family (kind); KD solid with filled markers, CE only dashed
    with hollow ones; each KD point is named. `teacher` = {"params": ..., "dev_accuracy": ...} adds the teacher as a
    star and a dotted line. There is no speed panel: the speeds the capacity runs record were measured one student
    at a time on a shared machine (the same model at 5k–57k queries/s), which is timing noise; the deployment
    lesson's benchmark (benchmarks/deployment.py) times the students in one controlled run.

    Draws on `axes` (one Axes, or a sequence holding one) when given, else on `figure`, else on a new Figure;
    returns the Figure that holds it.

    Introduced in notebook 07 (07-Few-Labels-and-Capacity).
    """
    frame = _tuning_frame(rows, ("student", "kind", "params", "method", "seed", "dev_accuracy"))
    summary = (frame.groupby(["kind", "student", "method"], sort=False)
               .agg(params=("params", "first"), accuracy=("dev_accuracy", "mean"))
               .reset_index())
    if isinstance(axes, Axes):
        axes = [axes]
    figure, (by_params,) = _new_axes_grid(axes, figure, (1, 1), (11, 6.8), "plot_capacity")
    for kind, family in summary.groupby("kind", sort=False):
        color = _family_color(kind, list(summary["kind"]))
        for method, part in family.groupby("method", sort=False):
            part = part.sort_values("params")
            kd = method == "KD"
            style = dict(color=color, marker="o", markersize=9, linewidth=2.5 if kd else 1.8,
                         linestyle="-" if kd else "--", markerfacecolor=color if kd else "white", markeredgewidth=2)
            by_params.plot(part["params"], 100 * part["accuracy"], label=f"{tr(kind)}, {tr(method)}", **style)
            if kd:
                for _, row in part.iterrows():
                    by_params.annotate(_short_student_name(row["student"], kind), (row["params"], 100 * row["accuracy"]),
                                       xytext=(6, 7), textcoords="offset points", fontsize=FONT_SIZE - 3, color=color)
    if teacher is not None:
        accuracy = 100 * teacher["dev_accuracy"]
        by_params.axhline(accuracy, color=OKABE_ITO["black"], linestyle=":", linewidth=1.5)
        by_params.scatter([teacher["params"]], [accuracy], marker="*", s=350, color=OKABE_ITO["black"], zorder=4,
                          label=tr("teacher ({value:.1f}M params, {accuracy:.1f}%)", value=teacher['params'] / 1e6, accuracy=accuracy))
    _log_scale(by_params, "x")
    by_params.set_xlabel(tr("trainable parameters (log scale)"), fontsize=FONT_SIZE)
    by_params.set_ylabel(tr("dev accuracy [%]"), fontsize=FONT_SIZE)
    by_params.set_title(tr("Accuracy vs size (for speed, see notebook 08's deployment benchmark)"), fontsize=FONT_SIZE)
    by_params.grid(alpha=0.3, which="both")
    figure.legend(*by_params.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=FONT_SIZE - 2)
    figure.suptitle(tr(title) or tr("Capacity gap: how much a bigger student buys, CE only (dashed) vs KD (solid)"),
                    fontsize=FONT_SIZE + 2)
    return figure


REMEDY_COLUMNS = ("remedy", "method", "epoch", "train_accuracy", "dev_accuracy", "kept_epoch", "final_dev_accuracy")


def plot_remedy_curves(rows, figure: Figure | None = None, columns: int = 3, title: str | None = None, *,
                       axes=None) -> Figure:
    """One panel per overfitting remedy: train (dashed) and dev (solid) accuracy per epoch, CE only and KD.

    `rows` are kdlab.tuning.remedy_curves rows; train accuracy is scored like dev (after each epoch, dropout off, on a
    fixed 1,000-row train subset). Where early stopping kept an earlier epoch, a marker shows it. The gap between a
    method's dashed and solid line is its overfitting: the model learns train queries it cannot generalise.

    Draws on `axes` (one Axes per panel of the grid) when given, else on `figure`, else on a new Figure;
    returns the Figure that holds them.

    Introduced in notebook 06 (06-Validation-and-Tuning).
    """
    import pandas as pd

    frame = _tuning_frame(rows, REMEDY_COLUMNS)
    remedies = list(dict.fromkeys(frame["remedy"]))
    colors = {"CE only": CE_COLOR, "KD": KD_COLOR}
    columns = max(1, min(columns, len(remedies)))
    lines = -(-len(remedies) // columns)
    figure, axes = _new_axes_grid(axes, figure, (lines, columns), (5.3 * columns, 3.9 * lines + 0.9), "plot_remedy_curves",
                                  sharex=True, sharey=True)
    for ax, remedy in zip(axes, remedies):
        for method, part in frame[frame["remedy"] == remedy].groupby("method", sort=False):
            color = colors.get(method, OKABE_ITO["grey"])
            ax.plot(part["epoch"], 100 * part["train_accuracy"], color=color, linestyle="--", linewidth=2,
                    label=tr("{method}: train", method=tr(method)))
            ax.plot(part["epoch"], 100 * part["dev_accuracy"], color=color, linestyle="-", linewidth=2.5,
                    label=tr("{method}: dev", method=tr(method)))
            kept = part["kept_epoch"].iloc[-1]
            if pd.notna(kept):  # early stopping restored the weights of this epoch
                ax.plot([kept], [100 * part["final_dev_accuracy"].iloc[-1]], marker="*", markersize=16, color=color,
                        markeredgecolor=OKABE_ITO["black"], linestyle="none", label=tr("{method}: epoch kept", method=tr(method)))
        ax.set_title(tr(remedy), fontsize=FONT_SIZE + 1)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[len(remedies):]:
        ax.set_visible(False)
    for index, ax in enumerate(axes[: len(remedies)]):
        if index % columns == 0:
            ax.set_ylabel(tr("accuracy [%]"), fontsize=FONT_SIZE)
        if index >= len(remedies) - columns:
            ax.set_xlabel(tr("epoch"), fontsize=FONT_SIZE)
            ax.tick_params(labelbottom=True)
    handles = {}
    for ax in axes[: len(remedies)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(len(handles), 6),
                  fontsize=FONT_SIZE - 1)
    figure.suptitle(tr(title) or tr("Overfitting remedies, each alone: train (dashed) vs dev (solid) accuracy"),
                    fontsize=FONT_SIZE + 2)
    return figure


def remedy_table(rows):
    """Per remedy and method: dev accuracy of the model you keep, best dev epoch, last train accuracy, train − dev gap (%).

    Introduced in notebook 06 (06-Validation-and-Tuning).
    """
    frame = _tuning_frame(rows, REMEDY_COLUMNS)
    table = frame.groupby(["remedy", "method"], sort=False).agg(
        kept_dev=("final_dev_accuracy", "last"), best_dev=("dev_accuracy", "max"), last_train=("train_accuracy", "last"),
        last_dev=("dev_accuracy", "last"), epochs_run=("epoch", "max"))
    percent = ["kept_dev", "best_dev", "last_train", "last_dev"]
    table[percent] = 100 * table[percent]
    table["gap"] = table["last_train"] - table["last_dev"]
    return table[[*percent, "gap", "epochs_run"]].rename(columns={"kept_dev": "dev of the kept model (%)", "best_dev": "best dev epoch (%)",
                                 "last_train": "train, last epoch (%)", "last_dev": "dev, last epoch (%)",
                                 "gap": "train − dev gap (points)", "epochs_run": "epochs run"})


@_draws_on_axes(figsize=(10, 5.5))
def plot_remedy_summary(rows, title: str | None = None, *, ax: Axes | None = None) -> Axes:
    """Dot plot: for each remedy, dev accuracy of the kept model with CE only and with KD, joined by a line.

    Introduced in notebook 06 (06-Validation-and-Tuning).
    """
    frame = _tuning_frame(rows, REMEDY_COLUMNS)
    final = frame.groupby(["remedy", "method"], sort=False)["final_dev_accuracy"].last().unstack("method")
    remedies = list(dict.fromkeys(frame["remedy"]))
    final = 100 * final.reindex(remedies)
    positions = np.arange(len(remedies))[::-1]  # first remedy on top
    colors = {"CE only": CE_COLOR, "KD": KD_COLOR}
    if {"CE only", "KD"} <= set(final.columns):
        ax.hlines(positions, final["CE only"], final["KD"], color=OKABE_ITO["grey"], linewidth=2, zorder=1)
    for method in final.columns:
        ax.scatter(final[method], positions, s=140, color=colors.get(method, OKABE_ITO["grey"]), zorder=3, label=tr(method))
        for y, x in zip(positions, final[method]):
            ax.annotate(f"{x:.1f}", (x, y), xytext=(0, 10), textcoords="offset points", ha="center",
                        fontsize=FONT_SIZE - 1, color=OKABE_ITO["black"])
    ax.set_yticks(positions, [tr(remedy) for remedy in remedies], fontsize=FONT_SIZE)
    ax.set_ylim(positions.min() - 0.6, positions.max() + 0.7)
    ax.margins(x=0.08)
    ax.set_xlabel(tr("dev accuracy of the model you keep [%]"), fontsize=FONT_SIZE)
    ax.set_title(tr(title) or tr("Which remedy helps, with and without KD"), fontsize=FONT_SIZE + 1)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 1, loc="lower right")
    return ax
