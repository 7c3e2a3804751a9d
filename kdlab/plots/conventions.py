"""Notebook 04's figures: one recipe spelled in each library, and what a constant factor does to SGD and Adam."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..language import tr
from .style import CE_COLOR, FONT_SIZE, OKABE_ITO, _draws_on_axes, _new_axes_grid

SOURCE_COLOR = OKABE_ITO["vermillion"]  # the source's own spelling
KDLAB_COLOR = CE_COLOR  # its kdlab translation


@_draws_on_axes(figsize=(10, 5.5))
def plot_copied_recipe(table, weight_on_labels: float, temperature: float, *, ax: Axes | None = None) -> Axes:
    """Bars of the teacher's real share (1 − kdlab λ) when one recipe is copied into each library (notebook 04).

    `table` is what `kdlab.conventions.copied_recipe` returns for the same weight and temperature.
    """
    names = [f"{row.source}\n{row.settings}" for row in table.itertuples()]
    share = table["teacher's share 1 − λ"].to_numpy(dtype=float)
    y = np.arange(len(table))[::-1]
    ax.barh(y, np.nan_to_num(share), color=OKABE_ITO["orange"], height=0.6)
    for yi, value in zip(y, share):
        text = tr("no kdlab equivalent") if np.isnan(value) else f"{value:.3f}"
        ax.text(0.01 if np.isnan(value) else value + 0.01, yi, text, va="center", fontsize=FONT_SIZE - 1)
    meant = 1 - weight_on_labels
    ax.axvline(meant, color=OKABE_ITO["black"], linestyle="--", linewidth=1.5,
               label=tr("what was meant: 1 − {weight_on_labels:g} = {meant:g}", weight_on_labels=weight_on_labels, meant=meant))
    ax.set_yticks(y, names, fontsize=FONT_SIZE - 2)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel(tr("teacher's share of the training direction, 1 − λ in kdlab terms (fraction)"), fontsize=FONT_SIZE)
    ax.set_title(tr("“Weight {weight_on_labels:g} on the labels, T = {temperature:g}” is a different loss in each "
                    "library",
                    weight_on_labels=weight_on_labels,
                    temperature=temperature),
                 fontsize=FONT_SIZE + 1)
    ax.legend(fontsize=FONT_SIZE - 2, loc="center right")
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_spelling_race(race, *, axes=None, figure: Figure | None = None) -> Figure:
    """kdlab's loss during training on a source's spelling and on its kdlab translation, SGD and Adam side by side (notebook 04).

    `race` holds the rows of `kdlab.conventions.spelling_race` for optimizer 'sgd' and 'adam' (pandas.concat).
    """
    figure, panels = _new_axes_grid(axes, figure, (1, 2), (11, 4.8), "plot_spelling_race", sharey=True)
    for ax, optimizer in zip(panels, ("sgd", "adam")):
        rows = race[race["optimizer"] == optimizer]
        for spelling, color, style, width in (("source", SOURCE_COLOR, "-", 3.0), ("kdlab", KDLAB_COLOR, "--", 2.0)):
            part = rows[rows["spelling"] == spelling]
            label = "trained on the source's loss" if spelling == "source" else "trained on its kdlab translation"
            ax.plot(part["step"], part["kdlab loss"], color=color, linestyle=style, linewidth=width, label=tr(label))
        ax.set_title(tr({"sgd": "SGD, fixed learning rate: the factor scales each step",
                      "adam": "Adam: the factor divides out"}[optimizer]), fontsize=FONT_SIZE)
        ax.set_xlabel(tr("training step (full batch)"), fontsize=FONT_SIZE)
        ax.grid(alpha=0.3)
    panels[0].set_ylabel(tr("kdlab loss at the converted (T, λ)"), fontsize=FONT_SIZE)
    panels[0].legend(fontsize=FONT_SIZE - 2)
    figure.suptitle(tr("Same gradient direction, different training — unless the optimizer ignores the scale"),
                    fontsize=FONT_SIZE + 1)
    return figure
