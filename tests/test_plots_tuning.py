"""kdlab.plots, notebook 06's figures: each is checked as an object — titles, labelled axes with units, how many
cells / lines / points it draws, and that every number written on it matches the rows it was given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from kdlab import plots

TEMPERATURES, LAMS, SEEDS = (1.0, 4.0, 16.0), (0.1, 0.5), (0, 1, 2)


def axes():
    return Figure(figsize=(8, 6)).subplots()


def sweep_rows():
    """Dev accuracy peaks at T = 4, λ = 0.1 (mean 0.91); seed s adds 0.01·(s − 1), so every std is 0.01."""
    rows = []
    for t in TEMPERATURES:
        for lam in LAMS:
            for seed in SEEDS:
                base = 0.91 - 0.02 * abs(np.log2(t / 4)) / 2 - 0.03 * (lam - 0.1)
                rows.append({"temperature": t, "lam": lam, "seed": seed, "dev_accuracy": base + 0.01 * (seed - 1),
                             "seconds": 7.0})
    return rows


def budget_rows(seeds=SEEDS):
    """K labels per class for 77 intents: CE climbs from 40% to 88%, KD stays near 90%."""
    rows = []
    for k, labelled, ce, kd in ((5, 385, 0.40, 0.88), (10, 770, 0.50, 0.89), ("all", 9003, 0.88, 0.91)):
        for seed in seeds:
            for method, accuracy in (("CE only", ce), ("KD", kd)):
                rows.append({"labels_per_class": k, "labelled": labelled, "method": method, "seed": seed,
                             "dev_accuracy": accuracy + 0.005 * seed, "seconds": 3.0})
    return rows


CAPACITY = {  # student: (kind, params, examples/s, CE accuracy, KD accuracy)
    "bag dim 16": ("bag", 500_000, 20_000.0, 0.80, 0.85),
    "bag dim 64": ("bag", 2_000_000, 15_000.0, 0.86, 0.90),
    "tiny-bert 1×128": ("tiny-bert", 4_000_000, 2_000.0, 0.70, 0.75),
    "tiny-bert 2×128": ("tiny-bert", 4_200_000, 1_200.0, 0.72, 0.78),
    "truncated 1 of 6 layers": ("truncated", 13_000_000, 900.0, 0.85, 0.88),
}


def capacity_rows():
    return [{"student": name, "kind": kind, "params": params, "method": method, "seed": 0,
             "dev_accuracy": ce if method == "CE only" else kd, "seconds": 5.0, "examples_per_s": speed}
            for name, (kind, params, speed, ce, kd) in CAPACITY.items() for method in ("CE only", "KD")]


def remedy_rows(epochs=6):
    """CE without remedies overfits (train → 99%, dev falls); early stopping keeps epoch 3."""
    rows = []
    for remedy in ("no remedy", "dropout 0.3", "early stopping (patience 3)"):
        for method in ("CE only", "KD"):
            stop = 3 if remedy.startswith("early") else None
            last = 5 if stop else epochs
            dev = [0.80 + 0.02 * e - (0.01 * max(0, e - 3) if method == "CE only" else 0) for e in range(1, last + 1)]
            final = dev[stop - 1] if stop else dev[-1]
            for e in range(1, last + 1):
                rows.append({"remedy": remedy, "method": method, "epoch": e, "train_accuracy": min(0.99, 0.7 + 0.06 * e),
                             "dev_accuracy": dev[e - 1], "kept_epoch": stop, "final_dev_accuracy": final})
    return rows


def cell_texts(ax):
    return [t for t in ax.texts if t.get_text().strip()]


# --- the T × λ heat map ---

def planted_mean(t: float, lam: float) -> float:
    """The mean dev accuracy sweep_rows plants for (T, λ): its formula, not a summary of the rows."""
    return 0.91 - 0.02 * abs(np.log2(t / 4)) / 2 - 0.03 * (lam - 0.1)


def test_sweep_heatmap_cells_show_mean_and_std_of_the_rows():
    ax = plots.plot_sweep_heatmap(axes(), sweep_rows())
    texts = cell_texts(ax)
    assert len(texts) == len(TEMPERATURES) * len(LAMS)
    image = ax.images[0].get_array()
    seen = set()
    for text in texts:
        column, row = (round(v) for v in text.get_position())
        t, lam = TEMPERATURES[row], LAMS[column]
        seen.add((t, lam))
        mean, spread = text.get_text().split("\n")
        # The seeds add −0.01, 0, +0.01: the mean is the planted value and the sample std (n − 1) exactly 1 point.
        assert float(mean) == pytest.approx(100 * planted_mean(t, lam), abs=0.05)
        assert spread == "± 1.0"
        assert image[row, column] == pytest.approx(100 * planted_mean(t, lam))
    assert seen == {(t, lam) for t in TEMPERATURES for lam in LAMS}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.5"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "4", "16"]


def test_sweep_heatmap_outlines_the_best_planted_setting():
    rows = sweep_rows()
    best = max(((t, lam) for t in TEMPERATURES for lam in LAMS), key=lambda key: planted_mean(*key))
    assert best == (4.0, 0.1)  # the peak sweep_rows plants
    ax = plots.plot_sweep_heatmap(axes(), rows)
    (outline,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    x, y = outline.get_xy()
    assert (x + 0.5, y + 0.5) == (LAMS.index(best[1]), TEMPERATURES.index(best[0]))
    assert (outline.get_width(), outline.get_height()) == (1, 1)


def test_sweep_heatmap_labels_titles_and_units():
    ax = plots.plot_sweep_heatmap(axes(), sweep_rows())
    assert "λ" in ax.get_xlabel() and "CE" in ax.get_xlabel()
    assert "temperature" in ax.get_ylabel()
    assert "[%]" in ax.get_title() and "3 seeds" in ax.get_title()
    colorbar_axes = [a for a in ax.figure.axes if a is not ax]
    assert colorbar_axes and "[%]" in colorbar_axes[0].get_ylabel()


def test_sweep_heatmap_with_one_seed_shows_no_spread():
    rows = [r for r in sweep_rows() if r["seed"] == 0]
    ax = plots.plot_sweep_heatmap(axes(), rows, title="live")
    assert all("±" not in t.get_text() for t in cell_texts(ax))
    assert ax.get_title() == "live"


def test_sweep_heatmaps_on_one_figure_share_one_colour_scale_and_one_colour_bar():
    full = sweep_rows()
    live = [dict(row, dev_accuracy=row["dev_accuracy"] - 0.05) for row in full if row["seed"] == 0]  # a worse, 1-seed run
    figure = Figure(layout="constrained")
    left, right = figure.subplots(1, 2)
    plots.plot_sweep_heatmap(left, live)
    plots.plot_sweep_heatmap(right, full)
    means = [100 * planted_mean(t, lam) for t, lam in {(r["temperature"], r["lam"]) for r in full}]
    low = 100 * min(r["dev_accuracy"] for r in live)  # the live run's worst cell (one seed: its own value)
    for ax in (left, right):
        assert ax.images[0].get_clim() == pytest.approx((low, max(means)), abs=1e-6)
    colour_bars = [ax for ax in figure.axes if ax not in (left, right)]
    assert len(colour_bars) == 1  # one bar for both panels, not one each
    # the same accuracy gets the same colour in either panel
    value = (low + max(means)) / 2
    assert np.allclose(left.images[0].to_rgba(value), right.images[0].to_rgba(value))
    # share_scale=False: a panel keeps its own range and its own bar
    alone = Figure(layout="constrained").subplots(1, 2)
    plots.plot_sweep_heatmap(alone[0], live, share_scale=False)
    plots.plot_sweep_heatmap(alone[1], full, share_scale=False)
    assert alone[0].images[0].get_clim() != alone[1].images[0].get_clim()


def test_sweep_heatmap_names_a_missing_column():
    with pytest.raises(ValueError, match="dev_accuracy"):
        plots.plot_sweep_heatmap(axes(), [{"temperature": 1.0, "lam": 0.5, "seed": 0}])
    with pytest.raises(ValueError, match="at least one row"):
        plots.plot_sweep_heatmap(axes(), [])


# --- label budget ---

def test_label_budget_lines_are_the_means_and_gaps_are_written():
    rows = budget_rows()
    ax = plots.plot_label_budget(axes(), rows, teacher_accuracy=0.93)
    frame = pd.DataFrame(rows)
    means = frame.groupby(["method", "labelled"])["dev_accuracy"].mean()
    curves = {c.get_label(): c.lines[0] for c in ax.containers}  # errorbar containers: (data line, caps, bars)
    assert len(curves) == 2
    for method in ("CE only", "KD"):
        (line,) = [l for name, l in curves.items() if name.startswith(method)]
        # errorbar keeps its data as object arrays (for unit support), hence the casts
        np.testing.assert_allclose(np.asarray(line.get_xdata(), float), [385, 770, 9003])
        np.testing.assert_allclose(np.asarray(line.get_ydata(), float), 100 * means[method].to_numpy())
    gaps = sorted(float(t.get_text()) for t in ax.texts)  # one per label budget, e.g. "+48.0"
    expected = sorted(100 * (means["KD"] - means["CE only"]).to_numpy())
    np.testing.assert_allclose(gaps, expected, atol=0.05)
    assert any(line.get_label() == "teacher (93.0%)" for line in ax.get_lines())
    assert "[%]" in ax.get_ylabel() and "labelled" in ax.get_xlabel() and "log" in ax.get_xlabel()
    assert ax.get_title() and ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5/intent\n385", "10/intent\n770", "all\n9,003"]


def test_label_budget_error_bars_are_the_std_over_seeds():
    rows = budget_rows()
    ax = plots.plot_label_budget(axes(), rows)
    spread = 100 * pd.DataFrame(rows).groupby(["method", "labelled"])["dev_accuracy"].std()
    (ce,) = [c for c in ax.containers if c.get_label().startswith("CE only")]
    heights = [segment[1][1] - segment[0][1] for segment in ce.lines[2][0].get_segments()]
    np.testing.assert_allclose(heights, 2 * spread["CE only"].to_numpy())


def test_label_budget_live_points_are_hollow_markers_at_their_values():
    live = [r for r in budget_rows(seeds=(0,)) if r["labels_per_class"] == 10]
    live[0]["dev_accuracy"] = 0.47
    ax = plots.plot_label_budget(axes(), budget_rows(), live_rows=live)
    points = {c.get_label(): c for c in ax.collections if "this notebook" in c.get_label()}
    assert set(points) == {"CE only (this notebook)", "KD (this notebook)"}
    np.testing.assert_allclose(points["CE only (this notebook)"].get_offsets(), [[770, 47.0]])
    assert all(tuple(face) == (1, 1, 1, 1) for c in points.values() for face in c.get_facecolors())


# --- capacity ---

def test_capacity_draws_one_line_per_family_and_method_at_the_data():
    fig = plots.plot_capacity(capacity_rows(), teacher={"params": 22_700_000, "dev_accuracy": 0.93})
    (by_params,) = fig.axes
    named = [l for l in by_params.get_lines() if not l.get_label().startswith("_")]
    assert len(named) == 3 * 2  # bag, tiny-bert, truncated × CE only, KD
    for line in named:
        kind, method = line.get_label().split(", ")
        students = sorted((v[1], v[3] if method == "CE only" else v[4]) for v in CAPACITY.values() if v[0] == kind)
        np.testing.assert_allclose(line.get_xdata(), [p for p, _ in students])
        np.testing.assert_allclose(line.get_ydata(), [100 * a for _, a in students])
    hollow = [l for l in named if l.get_markerfacecolor() == "white"]
    assert len(hollow) == 3 and all(l.get_label().endswith("CE only") for l in hollow)  # CE only hollow, KD filled
    # every KD point is named
    assert sorted(t.get_text() for t in by_params.texts) == sorted(["dim 16", "dim 64", "1×128", "2×128", "1 of 6 layers"])


def test_capacity_labels_units_and_teacher():
    fig = plots.plot_capacity(capacity_rows(), teacher={"params": 22_700_000, "dev_accuracy": 0.93})
    (by_params,) = fig.axes
    assert "parameters" in by_params.get_xlabel() and "log" in by_params.get_xlabel()
    assert "[%]" in by_params.get_ylabel()
    assert by_params.get_title() and fig.get_suptitle()
    (star,) = by_params.collections
    np.testing.assert_allclose(star.get_offsets(), [[22_700_000, 93.0]])
    assert by_params.get_xscale() == "log"
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "teacher (22.7M params, 93.0%)" in legend_texts


def test_capacity_has_no_speed_panel_and_needs_no_speed_column():
    # the speeds the capacity runs record are timing noise (one student at a time on a shared machine): not drawn
    rows = [{k: v for k, v in row.items() if k != "examples_per_s"} for row in capacity_rows()]
    fig = plots.plot_capacity(rows)
    assert len(fig.axes) == 1 and "queries/s" not in fig.axes[0].get_xlabel()
    assert "notebook 08" in fig.axes[0].get_title()  # where the controlled speed numbers are
    given = Figure().subplots()
    assert plots.plot_capacity(capacity_rows(), axes=given).axes == [given]


# --- overfitting remedies ---

def test_remedy_curves_one_panel_per_remedy_with_train_and_dev_lines():
    rows = remedy_rows()
    fig = plots.plot_remedy_curves(rows, columns=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["no remedy", "dropout 0.3", "early stopping (patience 3)"]
    frame = pd.DataFrame(rows)
    for ax in visible:
        curves = [l for l in ax.get_lines() if l.get_linestyle() in ("-", "--")]
        assert len(curves) == 4  # CE only and KD, train and dev
        for line in curves:
            method, what = line.get_label().split(": ")
            part = frame[(frame["remedy"] == ax.get_title()) & (frame["method"] == method)]
            np.testing.assert_allclose(line.get_ydata(), 100 * part[f"{what}_accuracy"].to_numpy())
            assert line.get_linestyle() == ("--" if what == "train" else "-")
    assert visible[0].get_ylabel() == "accuracy [%]" and visible[2].get_ylabel() == "accuracy [%]"
    assert all(ax.get_xlabel() == "epoch" for ax in visible[1:])
    assert fig.get_suptitle() and fig.legends


def test_remedy_curves_mark_the_epoch_early_stopping_kept():
    fig = plots.plot_remedy_curves(remedy_rows())
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    kept = [l for l in panels["early stopping (patience 3)"].get_lines() if l.get_marker() == "*"]
    assert len(kept) == 2
    for line in kept:
        assert list(line.get_xdata()) == [3]
        assert line.get_ydata()[0] == pytest.approx(100 * (0.80 + 0.02 * 3))
    assert not [l for l in panels["no remedy"].get_lines() if l.get_marker() == "*"]


def test_remedy_table_and_summary_match_the_rows():
    rows = remedy_rows()
    table = plots.remedy_table(rows)
    no_remedy_ce = table.loc[("no remedy", "CE only")]
    assert no_remedy_ce["train, last epoch (%)"] == pytest.approx(100 * min(0.99, 0.7 + 0.06 * 6))
    assert no_remedy_ce["dev, last epoch (%)"] == pytest.approx(100 * (0.80 + 0.12 - 0.03))
    assert no_remedy_ce["train − dev gap (points)"] == pytest.approx(no_remedy_ce["train, last epoch (%)"] - no_remedy_ce["dev, last epoch (%)"])
    assert table.loc[("early stopping (patience 3)", "KD"), "epochs run"] == 5
    ax = plots.plot_remedy_summary(axes(), rows)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["no remedy", "dropout 0.3", "early stopping (patience 3)"]
    points = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label() in ("CE only", "KD")}
    kept = table["dev of the kept model (%)"]
    for method, offsets in points.items():
        np.testing.assert_allclose(offsets[:, 0], [kept[(r, method)] for r in ("no remedy", "dropout 0.3",
                                                                           "early stopping (patience 3)")])
    written = sorted(float(t.get_text()) for t in ax.texts)
    np.testing.assert_allclose(written, sorted(kept.round(1)), atol=0.05)
    assert "[%]" in ax.get_xlabel() and ax.get_title()


def test_remedy_plots_name_missing_columns():
    with pytest.raises(ValueError, match="kept_epoch"):
        plots.plot_remedy_curves([{"remedy": "x", "method": "KD", "epoch": 1, "train_accuracy": 0.5,
                                   "dev_accuracy": 0.5, "final_dev_accuracy": 0.5}])
