"""kdlab.plots, notebook 12's figures: checked as objects — titles, labelled axes with units, legends, and that
what is drawn (points, error bars, lines) is the data it was given, worked out here with numpy."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer

from kdlab import plots


def row(recipe, seed, test, dev=None, teacher="default", augmented=False, hidden_weight=0.0, born_again=False):
    return {"recipe": recipe, "seed": seed, "teacher": teacher, "augmented": augmented, "hidden_weight": hidden_weight,
            "born_again": born_again, "test_accuracy": test, "dev_accuracy": test + 0.01 if dev is None else dev}


ROWS = [
    *(row("default", s, a) for s, a in enumerate((0.90, 0.91, 0.92))),
    *(row("weak-teacher", s, a, teacher="weak") for s, a in enumerate((0.88, 0.89, 0.93))),
    *(row("ensemble", s, a, teacher="ensemble") for s, a in enumerate((0.91, 0.91, 0.94))),
    *(row("augmented", s, a, augmented=True) for s, a in enumerate((0.92, 0.93, 0.95))),
    *(row("born-again", s, a, born_again=True) for s, a in enumerate((0.80, 0.81, 0.85))),
]
TEACHERS = [{"teacher": "weak", "test_accuracy": 0.895}, {"teacher": "default", "test_accuracy": 0.925},
            {"teacher": "ensemble", "test_accuracy": 0.935}]


def errorbars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def bar_extent(container: ErrorbarContainer, vertical: bool) -> np.ndarray:
    """(low, high) of each error bar, read off the drawn LineCollection."""
    segments = container.lines[2][0].get_segments()
    return np.array([[s[:, 1 if vertical else 0].min(), s[:, 1 if vertical else 0].max()] for s in segments])


def test_recipe_summary_is_mean_and_sample_std_in_percent():
    summary = plots.recipe_summary(ROWS, "test")
    for recipe in ("default", "weak-teacher", "born-again"):
        values = 100 * np.array([r["test_accuracy"] for r in ROWS if r["recipe"] == recipe])
        mean, std, count = summary[recipe]
        assert mean == pytest.approx(values.mean()) and std == pytest.approx(values.std(ddof=1)) and count == 3
    assert list(summary) == ["default", "weak-teacher", "ensemble", "augmented", "born-again"]
    assert plots.recipe_summary(ROWS[:1], "dev")["default"] == pytest.approx((91.0, 0.0, 1))
    with pytest.raises(ValueError, match="'dev' or 'test'"):
        plots.recipe_summary(ROWS, "train")
    with pytest.raises(ValueError, match="at least one row"):
        plots.recipe_summary([], "test")


def test_teacher_vs_student_plots_each_teacher_against_its_plain_students():
    ax = plots.plot_teacher_vs_student(TEACHERS, ROWS)
    assert ax.get_title() and "(%)" in ax.get_xlabel() and "(%)" in ax.get_ylabel() and "teacher" in ax.get_xlabel()
    (bars,) = errorbars(ax)
    x, y = bars.lines[0].get_data()
    assert np.allclose(x, [89.5, 92.5, 93.5])
    # the students of each teacher; the augmented and born-again rows (teacher "default") must not be mixed in
    expected = {t: 100 * np.array([r["test_accuracy"] for r in ROWS if r["recipe"] == name])
                for t, name in (("weak", "weak-teacher"), ("default", "default"), ("ensemble", "ensemble"))}
    assert np.allclose(y, [expected[t].mean() for t in ("weak", "default", "ensemble")])
    extent = bar_extent(bars, vertical=True)
    stds = np.array([expected[t].std(ddof=1) for t in ("weak", "default", "ensemble")])
    assert np.allclose(extent[:, 1] - extent[:, 0], 2 * stds)
    assert to_hex(bars.lines[0].get_color()) == plots.FAMILY_COLORS["bag"].lower()
    assert [t.get_text() for t in ax.texts] == ["weak\nteacher", "default\nteacher", "ensemble\nteacher"]
    assert ax.get_legend() is not None


def test_teacher_vs_student_refuses_rows_without_plain_students():
    with pytest.raises(ValueError, match="no plain-KD student rows"):
        plots.plot_teacher_vs_student(TEACHERS, [r for r in ROWS if r["recipe"] == "augmented"])
    with pytest.raises(ValueError, match="lack"):
        plots.plot_teacher_vs_student(TEACHERS, [{"recipe": "default", "test_accuracy": 0.9}])


def test_feature_weights_puts_each_weight_at_its_mean_and_std():
    rows = [row("features", s, a, dev=d, hidden_weight=w) for w, devs in ((1.0, (0.90, 0.92)), (0.3, (0.91, 0.91)), (0.0, (0.88, 0.89)))
            for s, (a, d) in enumerate(zip((0.5, 0.5), devs))]
    ax = plots.plot_feature_weights(rows)
    assert "dev" in ax.get_title() and ax.get_ylabel() == "dev accuracy (%)" and "weight" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.3", "1"]  # sorted by weight
    (bars,) = errorbars(ax)
    x, y = bars.lines[0].get_data()
    assert np.allclose(x, [0, 1, 2]) and np.allclose(y, [88.5, 91.0, 91.0])
    extent = bar_extent(bars, vertical=True)
    assert np.allclose(extent[:, 1] - extent[:, 0], 2 * np.array([np.std([88, 89], ddof=1), 0.0, np.std([90, 92], ddof=1)]))


def test_recipe_accuracy_draws_recipes_teacher_target_and_live_runs():
    ax = plots.plot_recipe_accuracy(ROWS, 0.925, split="test", recipes=["default", "augmented"],
                                    live={"augmented": 0.90}, live_label="live, 5 epochs, 1 seed")
    assert "test" in ax.get_title() and ax.get_xlabel() == "test accuracy (%)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["default", "augmented"]
    (bars,) = errorbars(ax)
    x, y = bars.lines[0].get_data()
    assert np.allclose(x, [91.0, 100 * np.mean([0.92, 0.93, 0.95])]) and list(y) == [1, 0]  # first recipe on top
    extent = bar_extent(bars, vertical=False)
    assert np.allclose(extent[:, 1] - extent[:, 0], 2 * 100 * np.array([np.std([0.90, 0.91, 0.92], ddof=1),
                                                                        np.std([0.92, 0.93, 0.95], ddof=1)]))
    vertical = sorted(line.get_xdata()[0] for line in ax.lines if len(line.get_xdata()) == 2
                      and line.get_xdata()[0] == line.get_xdata()[1])
    assert np.allclose(vertical, [98 * 0.925, 92.5])  # 98 % of the teacher, the teacher
    live = [line for line in ax.lines if line.get_label() == "live, 5 epochs, 1 seed"]
    assert len(live) == 1 and np.allclose(live[0].get_xdata(), [90.0]) and np.allclose(live[0].get_ydata(), [0])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "teacher (92.5 %)" in labels and "98 % of the teacher" in labels and "live, 5 epochs, 1 seed" in labels


def test_recipe_accuracy_defaults_to_every_recipe_and_refuses_bad_input():
    ax = plots.plot_recipe_accuracy(ROWS, 0.93, split="dev")
    assert ax.get_xlabel() == "dev accuracy (%)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["default", "weak-teacher", "ensemble", "augmented", "born-again"]
    with pytest.raises(ValueError, match="no rows for recipe"):
        plots.plot_recipe_accuracy(ROWS, 0.93, recipes=["features"])
    with pytest.raises(ValueError, match="not among the recipes drawn"):
        plots.plot_recipe_accuracy(ROWS, 0.93, recipes=["default"], live={"augmented": 0.9})
    with pytest.raises(ValueError, match="fraction"):
        plots.plot_recipe_accuracy(ROWS, 92.5)
