"""Notebook 09's figures (omitted intent, calibration, DistilBERT-style students) checked as objects.

Every bar and line is compared with a value computed here independently (plain Python or numpy), and
every axis must carry a label with its unit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kdlab import plots
from kdlab.calibration import expected_calibration_error, reliability_bins
from kdlab.omitted_class import bias_shift_scan

NAMES = ["card_arrival", "card_delivery_estimate", "lost_or_stolen_card", "top_up_failed", "exchange_rate"]


def axes():
    return Figure().subplots()


def synthetic(n: int = 200, k: int = len(NAMES), seed: int = 0):
    """Logits that are mostly right, with card_arrival and card_delivery_estimate made to look alike."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    logits = rng.normal(0, 1.5, (n, k))
    logits[np.arange(n), labels] += 3.0
    logits[labels == 1, 0] += 2.0
    return logits, labels


def has_unit(label: str) -> bool:
    return "[" in label and "]" in label


def hand_mass_on_class(logits, labels, class_index, temperature):
    """Summed probability on one class per gold class, with an explicit loop and math.exp."""
    sums = [0.0] * logits.shape[1]
    for row, gold in zip(logits, labels):
        exps = [math.exp(v / temperature) for v in row]
        sums[gold] += exps[class_index] / sum(exps)
    return np.array(sums)


def bar_heights(ax):
    return np.array([p.get_height() for p in ax.patches])


# --- where the knowledge about an omitted intent comes from ---

def test_soft_mass_bars_are_the_summed_probabilities_of_other_intents():
    logits, labels = synthetic()
    mass = hand_mass_on_class(logits, labels, 0, 4.0)
    ax = plots.plot_soft_mass_on_class(axes(), mass, NAMES, class_index=0, temperature=4.0, top=3)
    bars = sorted(ax.patches, key=lambda b: -b.get_y())  # top row first
    expected = np.sort(mass[1:])[::-1][:3]
    np.testing.assert_allclose([b.get_width() for b in bars], expected, rtol=1e-12)
    by_row = {tick: label.get_text() for tick, label in zip(ax.get_yticks(), ax.get_yticklabels())}
    shown = [by_row[row] for row in sorted(by_row, reverse=True)]  # top row first
    assert shown == [NAMES[i] for i in np.argsort(-mass[1:])[:3] + 1]
    assert "card_arrival" not in shown  # its own examples are the ones removed
    assert shown[0] == "card_delivery_estimate"  # the look-alike carries most
    assert has_unit(ax.get_xlabel()) and "T = 4" in ax.get_xlabel()
    assert f"{mass[1:].sum():.1f}" in ax.get_title() and "card_arrival" in ax.get_title()


def test_soft_mass_matches_torch_soft_targets():
    from kdlab import soft_targets

    logits, labels = synthetic()
    probs = soft_targets(torch.tensor(logits), 2.0)[:, 0]
    mass = torch.bincount(torch.tensor(labels), weights=probs, minlength=len(NAMES)).numpy()
    np.testing.assert_allclose(mass, hand_mass_on_class(logits, labels, 0, 2.0), rtol=1e-10)


@pytest.mark.parametrize("kwargs, word", [
    ({"mass": np.ones(3)}, "label_names"),
    ({"class_index": 7}, "class_index"),
    ({"top": 0}, "top"),
])
def test_soft_mass_bad_input_is_named(kwargs, word):
    settings = {"mass": np.ones(len(NAMES)), "label_names": NAMES, "class_index": 0, "temperature": 4.0, **kwargs}
    with pytest.raises(ValueError, match=word):
        plots.plot_soft_mass_on_class(axes(), **settings)


# --- the bias shift ---

def test_bias_shift_scan_lines_are_the_scan():
    logits, labels = synthetic()
    logits[:, 0] -= 3.0  # a student that under-calls card_arrival, as one trained without it does
    shifts = [0.5 * i for i in range(9)]
    scans = {"CE only": bias_shift_scan(torch.tensor(logits - 5 * (np.arange(5) == 0)), torch.tensor(labels), 0, shifts),
             "KD": bias_shift_scan(torch.tensor(logits), torch.tensor(labels), 0, shifts)}
    figure = plots.plot_bias_shift_scan(scans, "card_arrival", chosen_shift=2.5)
    left, right = figure.axes[:2]
    for n, scan in enumerate(scans.values()):
        recall, precision = left.get_lines()[2 * n], left.get_lines()[2 * n + 1]
        np.testing.assert_allclose(recall.get_xdata(), shifts)
        np.testing.assert_allclose(recall.get_ydata(), 100 * scan["class_recall"].to_numpy())
        np.testing.assert_allclose(precision.get_ydata(), 100 * scan["class_precision"].to_numpy())
        np.testing.assert_allclose(right.get_lines()[n].get_ydata(), 100 * scan["accuracy"].to_numpy())
    # recall can only grow as the class's logit is raised
    assert np.all(np.diff(left.get_lines()[2].get_ydata()) >= 0)
    for ax in (left, right):
        chosen = ax.get_lines()[-1]
        assert list(chosen.get_xdata()) == [2.5, 2.5]
        assert has_unit(ax.get_xlabel()) and "card_arrival" in ax.get_xlabel()
        assert has_unit(ax.get_ylabel()) and ax.get_title()
    assert "+2.5" in [t.get_text() for t in left.get_legend().get_texts()][-1]


def test_bias_shift_scan_needs_scan_columns():
    import pandas as pd

    with pytest.raises(ValueError, match="bias_shift_scan"):
        plots.plot_bias_shift_scan({"KD": pd.DataFrame({"shift": [0.0]})}, "card_arrival")
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_bias_shift_scan({}, "card_arrival")


def omit_rows():
    rows = []
    for cls, ce, kd, kd_after in (("card_arrival", (0.0, 0.0), (0.4, 0.5), (0.9, 0.95)),
                                  ("exchange_rate", (0.0, 0.1), (0.6, 0.7), (1.0, 0.9))):
        for seed in (0, 1):
            rows.append({"class": cls, "seed": seed, "method": "CE only", "test_recall_as_trained": ce[seed],
                         "test_recall_after_shift": ce[seed], "best_shift": 0.0})
            rows.append({"class": cls, "seed": seed, "method": "KD", "test_recall_as_trained": kd[seed],
                         "test_recall_after_shift": kd_after[seed], "best_shift": 3.0})
    return rows


def test_omitted_class_recall_bars_are_seed_means_with_std():
    ax = plots.plot_omitted_class_recall(axes(), omit_rows())
    # bar groups in order: CE only, KD as trained, KD after shift; within each, one bar per class
    expected = [0.0, 5.0, 45.0, 65.0, 92.5, 95.0]
    np.testing.assert_allclose(bar_heights(ax), expected)
    stds = [100 * np.std(v, ddof=1) for v in ((0.0, 0.1), (0.4, 0.5), (0.6, 0.7), (0.9, 0.95), (1.0, 0.9))]
    caps = [line for container in ax.containers if hasattr(container, "has_yerr") for line in container.lines[2]]
    spans = sorted(round(seg[1][1] - seg[0][1], 9) for coll in caps for seg in coll.get_segments())
    np.testing.assert_allclose(sorted(s for s in spans if s > 0), sorted(2 * s for s in stds), rtol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["card_arrival", "exchange_rate"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CE only", "KD as trained", "KD after the bias shift chosen on dev"]
    assert has_unit(ax.get_ylabel()) and "2 seeds" in ax.get_title()


def test_omitted_class_recall_one_seed_has_no_error_bars():
    rows = [r for r in omit_rows() if r["seed"] == 0]
    ax = plots.plot_omitted_class_recall(axes(), rows)
    np.testing.assert_allclose(bar_heights(ax), [0, 0, 40, 60, 90, 100])
    assert "1 seed" in ax.get_title()
    with pytest.raises(ValueError, match="test_recall_after_shift"):
        plots.plot_omitted_class_recall(axes(), [{"class": "x", "method": "KD", "test_recall_as_trained": 0.5}])


# --- calibration ---

def hand_bins(logits, labels, bins):
    """Top-1 confidence and correctness per example, binned with a loop: (edge_i, edge_i+1]."""
    conf, right = [], []
    for row, gold in zip(logits, labels):
        exps = np.exp(row - row.max())
        probs = exps / exps.sum()
        conf.append(probs.max())
        right.append(float(probs.argmax() == gold))
    per_bin = {}
    for c, r in zip(conf, right):
        index = min(max(math.ceil(c * bins) - 1, 0), bins - 1)
        per_bin.setdefault(index, []).append((c, r))
    return {i: (np.mean([c for c, _ in v]), np.mean([r for _, r in v]), len(v)) for i, v in per_bin.items()}


def test_reliability_diagram_bars_are_accuracy_per_bin():
    logits, labels = synthetic(n=300)
    bins = reliability_bins(torch.tensor(logits), torch.tensor(labels), bins=10)
    ax = plots.plot_reliability_diagram(axes(), bins, "teacher", min_count=5)
    expected = hand_bins(logits, labels, 10)
    solid = ax.containers[0]  # bins with ≥ min_count predictions
    pale = ax.containers[1] if len(ax.containers) == 3 else []
    gaps = ax.containers[-1]
    drawn = {round(b.get_x() * 10 / 100): b.get_height() for container in (solid, pale) for b in container}
    assert set(drawn) == set(expected)  # one bar per non-empty bin, none for empty ones
    for index, (confidence, accuracy, _) in expected.items():
        assert drawn[index] == pytest.approx(100 * accuracy)
    assert all(expected[round(b.get_x() / 10)][2] >= 5 for b in solid)
    for bar in gaps:  # each hatched gap spans accuracy → mean confidence
        confidence, accuracy, _ = expected[round(bar.get_x() / 10)]
        assert bar.get_y() == pytest.approx(100 * accuracy)
        assert bar.get_y() + bar.get_height() == pytest.approx(100 * confidence)
    diagonal = ax.get_lines()[0]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [0, 100]
    assert f"ECE {100 * expected_calibration_error(torch.tensor(logits), torch.tensor(labels), 10):.1f} %" in ax.get_title()
    assert has_unit(ax.get_xlabel()) and has_unit(ax.get_ylabel())


def test_reliability_diagrams_one_panel_per_model_and_one_legend():
    logits, labels = synthetic(n=300)
    models = {"teacher": torch.tensor(logits), "CE only": torch.tensor(3 * logits)}
    figure = plots.plot_reliability_diagrams({n: reliability_bins(z, torch.tensor(labels)) for n, z in models.items()})
    assert [ax.get_title().splitlines()[0] for ax in figure.axes] == ["teacher", "CE only"]
    assert len(figure.legends) == 1 and figure.get_suptitle()
    labels_in_legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert len(labels_in_legend) == len(set(labels_in_legend)) and "perfect calibration" in labels_in_legend
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_reliability_diagrams({})


def calibration_rows():
    rows = [{"model": "teacher", "temperature": 0, "seed": s, "dev_accuracy": 0.93, "ece": 0.02,
             "mean_confidence": 0.92, "agreement_with_teacher": 1.0} for s in (0, 1)]
    rows += [{"model": "CE only", "temperature": 0, "seed": s, "dev_accuracy": 0.88, "ece": 0.07 + 0.01 * s,
              "mean_confidence": 0.95, "agreement_with_teacher": 0.88} for s in (0, 1)]
    for t in (1.0, 4.0, 16.0):
        for s in (0, 1):
            rows.append({"model": "KD", "temperature": t, "seed": s, "dev_accuracy": 0.90, "ece": 0.01 * t + 0.002 * s,
                         "mean_confidence": 0.95 - 0.02 * t, "agreement_with_teacher": 0.9 + 0.002 * t})
    return rows


def test_calibration_vs_temperature_lines_are_seed_means():
    rows = calibration_rows()
    figure = plots.plot_calibration_vs_temperature(rows)
    ece, over, agree = figure.axes[:3]
    kd_line = ece.get_lines()[0]
    np.testing.assert_allclose(kd_line.get_xdata(), [1, 4, 16])
    np.testing.assert_allclose(kd_line.get_ydata(), [100 * (0.01 * t + 0.001) for t in (1, 4, 16)])
    np.testing.assert_allclose(over.get_lines()[0].get_ydata(), [100 * (0.95 - 0.02 * t - 0.90) for t in (1, 4, 16)])
    np.testing.assert_allclose(agree.get_lines()[0].get_ydata(), [100 * (0.9 + 0.002 * t) for t in (1, 4, 16)])
    flat = {line.get_label(): line.get_ydata()[0] for line in ece.get_lines()[1:]}
    assert flat["teacher"] == pytest.approx(2.0) and flat["CE-only student"] == pytest.approx(7.5)
    assert "teacher" not in [line.get_label() for line in agree.get_lines()]  # 100 % by definition
    assert len(figure.legends) == 1 and len(figure.legends[0].get_texts()) == 3
    for ax in figure.axes[:3]:
        assert ax.get_xscale() == "log" and "temperature" in ax.get_xlabel()
        assert has_unit(ax.get_ylabel()) and ax.get_title()
    assert "2 seed" in figure.get_suptitle()
    with pytest.raises(ValueError, match="no KD"):
        plots.plot_calibration_vs_temperature([r for r in rows if r["model"] != "KD"])


# --- DistilBERT-style students ---

def test_distilbert_bars_are_mean_dev_accuracy_per_start_and_loss():
    rows = []
    for (start, loss), values in {("teacher layers", "logits only"): (0.80, 0.82), ("teacher layers", "logits + cosine"): (0.84, 0.84),
                                  ("random init", "logits only"): (0.30, 0.40), ("random init", "logits + cosine"): (0.50, 0.52)}.items():
        rows += [{"start": start, "loss": loss, "seed": s, "dev_accuracy": v} for s, v in enumerate(values)]
    ax = plots.plot_distilbert_comparison(axes(), rows, teacher_accuracy=0.93)
    # first the 'logits only' bars (teacher layers, random init), then 'logits + cosine'
    np.testing.assert_allclose(bar_heights(ax), [81.0, 35.0, 84.0, 51.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["start: teacher layers", "start: random init"]
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(93.0)
    assert has_unit(ax.get_ylabel()) and "2 seed" in ax.get_title()
    with pytest.raises(ValueError, match="dev_accuracy"):
        plots.plot_distilbert_comparison(axes(), [{"start": "random init", "loss": "logits only"}])
