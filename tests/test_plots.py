"""kdlab.plots: every number a figure shows is checked against an independent computation."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kdlab import plots, soft_targets

NAMES = ["card_arrival", "card_delivery_estimate", "lost_or_stolen_card", "top_up_failed", "exchange_rate"]


def numpy_softmax(z, t):
    """Reference softmax written out by hand, without the max-subtraction trick."""
    e = [math.exp(v / t) for v in z]
    return np.array([v / sum(e) for v in e])


def synthetic(n: int = 60, k: int = len(NAMES), seed: int = 0):
    """Logits where class c is predicted for gold c, with class 0 and 1 made to look alike."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), labels] += 5.0
    logits[labels == 0, 1] += 3.0
    logits[labels == 1, 0] += 3.0
    return logits, labels


def axes() -> "plots.Axes":
    return Figure().subplots()


def test_softmax_matches_hand_and_torch():
    z = [2.0, 1.0, 0.1, -1.0]
    for t in (0.5, 1.0, 4.0, 20.0):
        np.testing.assert_allclose(plots.softmax(np.array(z), t), numpy_softmax(z, t), rtol=1e-12)
        np.testing.assert_allclose(plots.softmax(np.array(z), t), soft_targets(torch.tensor(z, dtype=torch.float64), t).numpy(), rtol=1e-12)
    assert np.isfinite(plots.softmax(np.array([1000.0, 0.0]), 0.05)).all()


def test_entropy_and_effective_classes_by_hand():
    assert plots.entropy_bits(np.array([1.0, 0.0, 0.0])) == 0.0
    assert plots.entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0)
    assert plots.entropy_bits(np.array([0.5, 0.25, 0.25])) == pytest.approx(1.5)
    assert plots.effective_classes(np.full(77, 1 / 77)) == pytest.approx(77.0)
    assert plots.effective_classes(np.array([0.5, 0.5, 0.0])) == pytest.approx(2.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_is_named(bad):
    with pytest.raises(ValueError, match="temperature"):
        plots.softmax(np.zeros(3), bad)


def test_softmax_toy_bars_are_the_softmax():
    z = [3.0, 1.5, 0.5, 0.0]
    fig = plots.plot_softmax_toy(z, temperatures=(1, 4, 20), class_names=["a", "b", "c", "d"])
    assert len(fig.axes) == 3
    for ax, t in zip(fig.axes, (1, 4, 20)):
        heights = [bar.get_height() for bar in ax.patches]
        np.testing.assert_allclose(heights, numpy_softmax(z, t), rtol=1e-9)
        assert f"T = {t}" in ax.get_title()
    # flatter at higher T: the top bar shrinks
    assert fig.axes[0].patches[0].get_height() > fig.axes[1].patches[0].get_height() > fig.axes[2].patches[0].get_height()
    assert fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="class_names"):
        plots.plot_softmax_toy(z, class_names=["a"])


def test_distribution_top_k_by_name_with_gold():
    z = np.array([0.1, 2.0, 1.0, 3.0, -1.0])
    probs = numpy_softmax(z, 2.0)
    ax = plots.plot_distribution(axes(), probs, NAMES, gold=1, top_k=3, title="x")
    bars = sorted(ax.patches, key=lambda b: -b.get_y())  # top row first
    np.testing.assert_allclose([b.get_width() for b in bars], np.sort(probs)[::-1][:3])
    labels = [t.get_text() for t in ax.get_yticklabels()]  # top row first
    assert labels == ["top_up_failed", "★ card_delivery_estimate", "lost_or_stolen_card"]
    assert bars[1].get_facecolor()[:3] != bars[0].get_facecolor()[:3]  # gold stands out
    assert ax.get_xlabel() == "probability" and ax.get_title() == "x"


def test_distribution_appends_gold_outside_top_k():
    probs = numpy_softmax([0.1, 2.0, 1.0, 3.0, -1.0], 1.0)
    ax = plots.plot_distribution(axes(), probs, NAMES, gold=4, top_k=2)
    assert len(ax.patches) == 3
    assert "(rank 5)" in ax.get_yticklabels()[-1].get_text()  # bottom row


def test_distribution_rest_bar_holds_the_mass_not_shown_so_the_bars_sum_to_one():
    probs = numpy_softmax([0.1, 2.0, 1.0, 3.0, -1.0], 1.0)
    ax = plots.plot_distribution(axes(), probs, NAMES, gold=0, top_k=2, show_rest=True)
    bars = sorted(ax.patches, key=lambda b: -b.get_y())  # top row first: 2 largest, the gold (rank 4), the rest
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "other 2 intents"
    rest = probs[2] + probs[4]  # lost_or_stolen_card and exchange_rate: neither in the top 2 nor gold
    assert bars[-1].get_width() == pytest.approx(rest)
    assert sum(b.get_width() for b in bars) == pytest.approx(1.0)
    assert f"{rest:.3f}" in [t.get_text() for t in ax.texts]
    assert len(plots.plot_distribution(axes(), probs, NAMES, top_k=2).patches) == 2  # off unless asked for


def test_distribution_uniform_line_keeps_clear_of_the_value_labels():
    probs = numpy_softmax([0.1, 2.0, 1.0, 3.0, -1.0], 1.0)
    assert not plots.plot_distribution(axes(), probs, NAMES).get_lines()  # off unless asked for
    ax = plots.plot_distribution(axes(), probs, NAMES, top_k=5, show_uniform=True)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), [0.2, 0.2])
    assert "uniform 1/5" in ax.get_legend().get_texts()[0].get_text()
    labels = {float(t.get_text()): t.xy[0] for t in ax.texts}  # value label -> where it is anchored
    for p in probs:
        assert labels[round(p, 3)] == pytest.approx(max(p, 0.2))  # right of the bar, or of the line if that is further


@pytest.mark.parametrize("kwargs, word", [({"top_k": 0}, "top_k"), ({"gold": 9}, "gold")])
def test_distribution_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        plots.plot_distribution(axes(), np.full(5, 0.2), NAMES, **kwargs)
    with pytest.raises(ValueError, match="label_names"):
        plots.plot_distribution(axes(), np.full(4, 0.25), NAMES)


def test_entropy_curve_rises_with_temperature_and_matches_by_hand():
    logits, _ = synthetic()
    temps = [0.5, 1.0, 4.0, 50.0]
    curve = plots.entropy_curve(logits, temps)
    by_hand = [np.mean([-(p * np.log2(p)).sum() for p in (numpy_softmax(row, t) for row in logits)]) for t in temps]
    np.testing.assert_allclose(curve["mean"], by_hand, rtol=1e-9)
    assert np.all(np.diff(curve["mean"]) > 0)
    assert np.all(curve["p10"] <= curve["mean"]) and np.all(curve["mean"] <= curve["p90"])
    assert curve["mean"][-1] <= math.log2(logits.shape[1])
    ax = plots.plot_entropy_vs_temperature(axes(), torch.tensor(logits), temps)
    assert ax.get_xscale() == "log" and "bits" in ax.get_ylabel()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), by_hand, rtol=1e-9)


def test_average_soft_targets_and_similarity():
    logits, labels = synthetic()
    mean_targets = plots.average_soft_targets(logits, labels, temperature=2.0)
    np.testing.assert_allclose(mean_targets.sum(axis=1), 1.0)
    expected_row0 = np.mean([numpy_softmax(row, 2.0) for row in logits[labels == 0]], axis=0)
    np.testing.assert_allclose(mean_targets[0], expected_row0)
    sim = plots.class_similarity(logits, labels, 2.0)
    np.testing.assert_allclose(sim, sim.T)
    off = sim - np.diag(np.diag(sim))
    assert np.unravel_index(off.argmax(), off.shape) in {(0, 1), (1, 0)}  # the planted look-alikes
    order = plots.most_similar_classes(sim, 3)
    assert set(order[:2]) == {0, 1}
    ax = plots.plot_similarity_map(axes(), sim, NAMES, classes=order)
    shown = ax.images[0].get_array()
    assert np.ma.is_masked(shown[0, 0]) or np.isnan(shown[0, 0])  # diagonal hidden
    assert shown[0, 1] == pytest.approx(sim[order[0], order[1]])
    assert [t.get_text() for t in ax.get_yticklabels()] == [NAMES[c] for c in order]
    with pytest.raises(ValueError, match="labels"):
        plots.average_soft_targets(logits, labels[:-1])


def test_confusions_table_and_plot():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 4])
    preds = np.array([0, 1, 1, 0, 1, 2, 3, 2, 3, 4])
    counts = plots.confusion_counts(preds, labels, 5)
    assert counts.sum() == 10 and counts[0, 1] == 2 and counts[1, 0] == 1 and counts[2, 3] == 1
    table = plots.top_confusions(preds, labels, NAMES, top=5)
    assert list(table["count"]) == [2, 1, 1]
    assert table.iloc[0]["gold intent"] == "card_arrival" and table.iloc[0]["predicted as"] == "card_delivery_estimate"
    assert table.iloc[0]["share of gold (%)"] == pytest.approx(66.7)
    ax = plots.plot_confusions(axes(), preds, labels, NAMES, count=3)
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert set(names) >= {"card_arrival", "card_delivery_estimate"}
    shown = ax.images[0].get_array()
    i, j = names.index("card_arrival"), names.index("card_delivery_estimate")
    assert shown[i, j] == 2 and ax.get_xlabel() == "predicted intent"
    with pytest.raises(ValueError, match="count"):
        plots.plot_confusions(axes(), preds, labels, NAMES, count=1)


def test_confusion_map_with_pairs_shows_every_top_pair_outlined_and_masks_the_diagonal():
    # mistakes (gold → predicted), written out: 0→1 ×3, 2→3 ×2, 4→0 ×1, 1→0 ×1; class 2 is never right
    labels = np.array([0, 0, 0, 0, 2, 2, 4, 1, 1, 3, 4])
    preds = np.array([1, 1, 1, 0, 3, 3, 0, 0, 1, 3, 4])
    ax = plots.plot_confusions(axes(), preds, labels, NAMES, pairs=3)
    names = [t.get_text() for t in ax.get_yticklabels()]
    # the three most frequent pairs are 0→1, 2→3, then the first tie by index: 1→0; class 4 is in none of them
    assert sorted(names) == sorted([NAMES[c] for c in (0, 1, 2, 3)])
    shown = ax.images[0].get_array()
    assert np.ma.getmaskarray(shown).diagonal().all() and not np.ma.getmaskarray(shown)[~np.eye(4, dtype=bool)].any()
    at = {name: k for k, name in enumerate(names)}
    assert shown[at[NAMES[0]], at[NAMES[1]]] == 3 and shown[at[NAMES[2]], at[NAMES[3]]] == 2
    numbers = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert all(i != j for i, j in numbers)  # no number on the diagonal
    outlines = {(round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches if not p.get_fill()}
    assert outlines == {(at[NAMES[0]], at[NAMES[1]]), (at[NAMES[2]], at[NAMES[3]]), (at[NAMES[1]], at[NAMES[0]])}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("not counted" in text for text in legend)
    with pytest.raises(ValueError, match="pairs"):
        plots.plot_confusions(axes(), preds, labels, NAMES, pairs=0)


# --- one API for every plot: draw on the Axes given (ax=, or first as the notebooks pass it), else make a Figure ---

def plotting_functions():
    return {name: getattr(plots, name) for name in plots.__all__ if name.startswith("plot_")}


def test_every_plot_takes_an_optional_ax_or_axes():
    functions = plotting_functions()
    assert len(functions) >= 26  # the 26 plot_* functions of the old kdlab/plots.py
    for name, function in functions.items():
        parameters = inspect.signature(function).parameters
        target = "ax" if "ax" in parameters else "axes"
        assert target in parameters, f"{name} takes neither ax= nor axes="
        assert parameters[target].default is None and parameters[target].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_one_panel_plot_draws_on_the_axes_given_first_or_as_ax_else_on_a_new_figure():
    probs = numpy_softmax([0.1, 2.0, 1.0, 3.0, -1.0], 1.0)
    given = axes()
    assert plots.plot_distribution(given, probs, NAMES, top_k=3) is given  # as the notebooks call it
    keyword = axes()
    assert plots.plot_distribution(probs, NAMES, top_k=3, ax=keyword) is keyword
    made = plots.plot_distribution(probs, NAMES, top_k=3)  # no Axes: a Figure of its own, not pyplot's
    assert isinstance(made.figure, Figure) and made.figure.axes == [made] and made is not given
    for ax in (given, keyword, made):  # the same picture every way
        np.testing.assert_allclose(sorted(b.get_width() for b in ax.patches), np.sort(probs)[-3:])
    with pytest.raises(TypeError, match="once"):
        plots.plot_distribution(axes(), probs, NAMES, ax=axes())
    with pytest.raises(TypeError, match="Axes"):
        plots.plot_loss_parts(1.0, 2.0, 0.5, ax="not an axes")
    assert plots.plot_loss_parts(1.0, 2.0, 0.5).patches  # ce, kd, lam only: a new figure


def test_multi_panel_plot_draws_on_the_axes_given_and_returns_their_figure():
    z = [3.0, 1.5, 0.5, 0.0]
    outer = Figure(figsize=(12, 4))
    panels = outer.subplots(1, 3)
    figure = plots.plot_softmax_toy(z, temperatures=(1, 4, 20), class_names=list("abcd"), axes=panels)
    assert figure is outer and len(outer.axes) == 3
    for ax, t in zip(panels, (1, 4, 20)):
        np.testing.assert_allclose([bar.get_height() for bar in ax.patches], numpy_softmax(z, t), rtol=1e-9)
    own = plots.plot_softmax_toy(z, temperatures=(1, 4))
    assert isinstance(own, Figure) and len(own.axes) == 2
    with pytest.raises(ValueError, match="3 matplotlib Axes"):
        plots.plot_softmax_toy(z, temperatures=(1, 4, 20), axes=panels[:2])
    with pytest.raises(TypeError, match="not both"):
        plots.plot_softmax_toy(z, temperatures=(1,), axes=panels[:1], figure=Figure())


@pytest.mark.parametrize("bad, error", [("4", TypeError), (True, TypeError), (None, TypeError), (1001.0, ValueError),
                                        (float("-inf"), ValueError)])
def test_plots_refuse_what_kdlab_checks_refuses(bad, error):
    with pytest.raises(error, match="temperature"):
        plots.softmax(np.zeros(3), bad)
    with pytest.raises(error, match="temperature"):
        plots.entropy_curve(np.zeros((2, 3)), [1.0, bad])


def test_log_axes_read_plain_numbers_not_powers_of_ten():
    import matplotlib

    matplotlib.use("Agg")
    from kdlab import plots

    ax = plots.plot_accuracy_vs_latency([
        {"model": "teacher (MiniLM-L6)", "latency_median_ms": 40.0, "accuracy": 0.92, "size_mb": 91.0},
        {"model": "bag KD student", "latency_median_ms": 0.3, "accuracy": 0.90, "size_mb": 8.0},
    ])
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert {"0.1", "1", "10", "100"} <= set(labels), labels
    assert not any("10^" in text or "$" in text for text in labels)
    assert [ax.xaxis.get_major_formatter()(v, 0) for v in (0.1, 1, 1000, 1e4, 2e6)] == ["0.1", "1", "1000", "10k", "2M"]


# --- notebook 05: runs told apart by more than hue; the per-intent split counted on the figure ---

def test_learning_curves_give_each_run_its_own_line_style_and_marker():
    rows = [{"epoch": e, "loss": 1 / e, "ce": 1 / e, "kd": 2 / e, "dev_accuracy": 0.8} for e in (1, 2, 3)]
    figure = plots.plot_learning_curves({"Trainer": rows, "kdlab loop": rows, "third": rows})
    for ax in figure.axes[:3]:
        lines = ax.get_lines()[:3]
        assert len({line.get_linestyle() for line in lines}) == 3
        assert len({line.get_marker() for line in lines}) == 3
        assert lines[0].get_linewidth() > lines[1].get_linewidth()  # identical runs: the first still shows underneath


def test_per_class_change_legend_counts_every_gain_loss_and_tie():
    before = np.array([0.5, 0.9, 0.7, 0.8, 0.6])
    after = np.array([0.8, 0.7, 0.7, 0.85, 0.65])  # gains: 0, 3, 4; loss: 1; unchanged: 2
    ax = plots.plot_per_class_change(axes(), before, after, NAMES, count=2)  # one gain and one loss drawn
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["gained: 3 intents (1 largest shown)", "lost: 1 intent (1 largest shown)", "unchanged: 1 intent"]
    hatches = {round(p.get_width()): p.get_hatch() for p in ax.patches}
    assert hatches == {30: None, -20: "//"} or hatches == {30: "", -20: "//"}  # losses hatched, not only a hue apart
