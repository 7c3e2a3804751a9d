"""Figures of notebook 12: which teacher, which transfer set, which extra loss — the teacher panel's students.

Rows are benchmarks/kd_quality.py --section beyond's (`kdlab.tuning.benchmark_results("beyond")`): one dict per
recipe and seed with recipe, teacher, augmented, hidden_weight, born_again, dev_accuracy and test_accuracy
(fractions); the plots show percent. Every student here is a bag student, so every student point is the bag
colour; teachers are black.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes

from ..language import tr
from .style import FAMILY_COLORS, FONT_SIZE, OKABE_ITO, _draws_on_axes, check_rows

STUDENT_COLOR = FAMILY_COLORS["bag"]
TEACHER_COLOR = FAMILY_COLORS["teacher"]
LIVE_COLOR = OKABE_ITO["orange"]
SPLITS = ("dev", "test")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}")
    return split


def recipe_summary(rows: Sequence[Mapping], split: str = "test", by: str = "recipe") -> dict:
    """Mean and standard deviation (over seeds, in %) of each recipe's accuracy, in first-seen order (notebook 12)."""
    split = _check_split(split)
    rows = check_rows(rows, (by, f"{split}_accuracy"), "recipe_summary")
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[by], []).append(100 * float(row[f"{split}_accuracy"]))
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) for key, v in groups.items()}


@_draws_on_axes(figsize=(7.5, 5.5))
def plot_teacher_vs_student(teachers: Sequence[Mapping], rows: Sequence[Mapping], *, ax: Axes | None = None) -> Axes:
    """Each panel teacher's test accuracy (x) against its plain-KD bag student's (y, mean ± std): the capacity gap (notebook 12).

    `teachers`: dicts with teacher and test_accuracy (the JSON's meta["teachers"]); `rows`: the benchmark's rows,
    of which the plain ones (no augmented set, no feature loss, not born-again) are used, grouped by teacher.
    """
    teachers = check_rows(teachers, ("teacher", "test_accuracy"), "plot_teacher_vs_student")
    rows = check_rows(rows, ("teacher", "augmented", "hidden_weight", "born_again", "test_accuracy"), "plot_teacher_vs_student")
    plain = [r for r in rows if not r["augmented"] and not r["hidden_weight"] and not r["born_again"]]
    students = recipe_summary(plain, "test", by="teacher") if plain else {}
    names = [t["teacher"] for t in teachers if t["teacher"] in students]
    if not names:
        raise ValueError("plot_teacher_vs_student: no plain-KD student rows for any of these teachers")
    x = [100 * float(next(t for t in teachers if t["teacher"] == n)["test_accuracy"]) for n in names]
    y = [students[n][0] for n in names]
    err = [students[n][1] for n in names]
    ax.errorbar(x, y, yerr=err, fmt="o", color=STUDENT_COLOR, markersize=10, capsize=6, lw=2,
                label=tr("bag student, mean ± std over {value} seeds", value=students[names[0]][2]))
    for name, xi, yi, ei in zip(names, x, y, err):  # under each error bar
        ax.annotate(tr("{name}\nteacher", name=name), (xi, yi - ei), xytext=(0, -6), textcoords="offset points", fontsize=FONT_SIZE,
                    ha="center", va="top")
    low, high = min(x + y) - 1.0, max(x + y) + 1.0
    ax.plot([low, high], [low, high], ls=":", color=TEACHER_COLOR, lw=1.5, label=tr("student = teacher"))
    ax.set_xlim(low, high + 1.0)
    ax.set_xlabel(tr("teacher's test accuracy (%)"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("its student's test accuracy (%)"), fontsize=FONT_SIZE)
    ax.set_title(tr("A better teacher, a better student?"), fontsize=FONT_SIZE + 2)
    ax.legend(fontsize=FONT_SIZE - 1, loc="upper left")
    ax.tick_params(labelsize=FONT_SIZE)
    ax.grid(alpha=0.3)
    return ax


@_draws_on_axes(figsize=(7.5, 5))
def plot_feature_weights(rows: Sequence[Mapping], *, ax: Axes | None = None, split: str = "dev") -> Axes:
    """Dev accuracy (mean ± std over seeds) against the feature loss's weight, 0 = plain KD (notebook 12).

    `rows`: rows with hidden_weight and `split`_accuracy — the JSON's meta["feature_weights"] plus the plain
    'default' recipe's rows for weight 0. The weights sit at even spacing (0 cannot go on a log axis).
    """
    split = _check_split(split)
    rows = check_rows(rows, ("hidden_weight", f"{split}_accuracy"), "plot_feature_weights")
    summary = recipe_summary(rows, split, by="hidden_weight")
    weights = sorted(summary)
    means, stds = [summary[w][0] for w in weights], [summary[w][1] for w in weights]
    positions = np.arange(len(weights))
    ax.errorbar(positions, means, yerr=stds, fmt="o-", color=STUDENT_COLOR, markersize=10, capsize=6, lw=2,
                label=tr("bag student, mean ± std over {value} seeds", value=summary[weights[0]][2]))
    ax.set_xticks(positions, [f"{w:g}" for w in weights])
    ax.set_xlabel(tr("weight of the feature loss, 1 − cos(P·s, t) (0 = plain KD)"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("{split} accuracy (%)", split=tr(split)), fontsize=FONT_SIZE)
    ax.set_title(tr("Feature distillation: how much weight? ({split})", split=tr(split)), fontsize=FONT_SIZE + 2)
    ax.legend(fontsize=FONT_SIZE - 1, loc="lower center")
    ax.tick_params(labelsize=FONT_SIZE)
    ax.grid(alpha=0.3)
    return ax


@_draws_on_axes(figsize=(9, 6))
def plot_recipe_accuracy(rows: Sequence[Mapping], teacher_accuracy: float, *, ax: Axes | None = None, split: str = "test",
                         target: float = 0.98, recipes: Sequence[str] | None = None,
                         live: Mapping[str, float] | None = None, live_label: str = "live run") -> Axes:
    """Each recipe's bag-student accuracy (mean ± std over seeds), with lines at the teacher's and at `target` of it (notebook 12).

    `teacher_accuracy` is the teacher's on the same split (a fraction); `recipes` picks and orders them (default:
    all, first-seen order, drawn top to bottom); `live` adds one hollow marker per recipe — a run made in the
    notebook, shorter than the benchmark's, labelled `live_label`.
    """
    split = _check_split(split)
    if not 0 < teacher_accuracy <= 1:
        raise ValueError(f"teacher_accuracy must be a fraction in (0, 1], got {teacher_accuracy!r}")
    if not 0 < target <= 1:
        raise ValueError(f"target must be a fraction in (0, 1], got {target!r}")
    summary = recipe_summary(rows, split)
    names = list(summary) if recipes is None else list(recipes)
    unknown = [n for n in names if n not in summary]
    if unknown:
        raise ValueError(f"plot_recipe_accuracy: no rows for recipe(s) {unknown}; the rows hold {list(summary)}")
    y = np.arange(len(names))[::-1]
    means, stds = [summary[n][0] for n in names], [summary[n][1] for n in names]
    ax.errorbar(means, y, xerr=stds, fmt="o", color=STUDENT_COLOR, markersize=9, capsize=5, lw=2,
                label=tr("bag student, mean ± std over {value} seeds", value=summary[names[0]][2]))
    if live:
        missing = [n for n in live if n not in names]
        if missing:
            raise ValueError(f"plot_recipe_accuracy: live runs for {missing}, which are not among the recipes drawn")
        ax.plot([100 * live[n] for n in names if n in live], [yi for n, yi in zip(names, y) if n in live], "D",
                markerfacecolor="none", markeredgecolor=LIVE_COLOR, markeredgewidth=2.5, markersize=11, ls="none",
                label=tr(live_label))
    ax.axvline(100 * teacher_accuracy, color=TEACHER_COLOR, lw=2, label=tr("teacher ({value:.1f} %)", value=100 * teacher_accuracy))
    ax.axvline(100 * target * teacher_accuracy, color=TEACHER_COLOR, lw=1.5, ls="--",
               label=tr("{value:g} % of the teacher", value=100 * target))
    ax.set_yticks(y, names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel(tr("{split} accuracy (%)", split=tr(split)), fontsize=FONT_SIZE)
    ax.set_title(tr("Bag students by recipe ({split})", split=tr(split)), fontsize=FONT_SIZE + 2)
    ax.legend(fontsize=FONT_SIZE - 1, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.tick_params(labelsize=FONT_SIZE)
    ax.grid(alpha=0.3, axis="x")
    return ax


__all__ = ["recipe_summary", "plot_teacher_vs_student", "plot_feature_weights", "plot_recipe_accuracy"]
