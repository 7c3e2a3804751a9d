"""kdlab.readouts: each table checked against numbers worked out by hand on small grids."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kdlab import readouts
from kdlab.tuning import HONEST_KD


def sweep_rows():
    # two seeds per cell; means: (2, .1) .87, (2, .5) .80, (4, .1) .865, (4, .5) .90
    return pd.DataFrame({"temperature": [2, 2, 2, 2, 4, 4, 4, 4], "lam": [0.1, 0.1, 0.5, 0.5] * 2,
                         "seed": [0, 1] * 4, "dev_accuracy": [0.86, 0.88, 0.80, 0.80, 0.86, 0.87, 0.89, 0.91]})


def test_typical_spread_is_the_median_seed_std():
    stds = [pd.Series(pair).std() for pair in ([0.86, 0.88], [0.80, 0.80], [0.86, 0.87], [0.89, 0.91])]
    assert readouts.typical_spread(sweep_rows(), ["temperature", "lam"]) == pytest.approx(pd.Series(stds).median())


def test_sweep_readout_ranks_cells_and_marks_those_within_a_typical_spread():
    table = readouts.sweep_readout(sweep_rows())
    assert table[["T", "λ"]].values.tolist() == [[4, 0.5], [2, 0.1], [4, 0.1], [2, 0.5]]
    assert table["dev, mean (%)"].tolist() == pytest.approx([90.0, 87.0, 86.5, 80.0])
    assert table["behind the best (points)"].tolist() == pytest.approx([0, 3.0, 3.5, 10.0])
    # the typical spread is about 1.06 points here: only the best cell itself is within it
    assert table["within a typical spread of the best"].tolist() == [True, False, False, False]


def test_lambda_readout_averages_over_t_and_names_the_best_t():
    table = readouts.lambda_readout(sweep_rows())
    assert table.loc[0.1, "dev, mean over all T (%)"] == pytest.approx((87.0 + 86.5) / 2)
    assert table.loc[0.5, "dev, mean over all T (%)"] == pytest.approx((80.0 + 90.0) / 2)
    assert table["best T"].tolist() == [2, 4]
    assert table["dev at the best T (%)"].tolist() == pytest.approx([87.0, 90.0])


def test_labels_to_match_interpolates_on_a_log_axis():
    # CE: 100 labels → 50 %, 1,000 → 70 %: 60 % lies halfway on the log axis, at √(100·1000) ≈ 316 labels
    assert readouts.labels_to_match([100, 1000], [0.5, 0.7], 0.6) == pytest.approx(math.sqrt(1e5))
    assert readouts.labels_to_match([1000, 100], [0.7, 0.5], 0.5) == pytest.approx(100)  # any order
    assert readouts.labels_to_match([100, 1000], [0.5, 0.7], 0.71) == math.inf
    # a dip in the curve is ironed out: 65 % is first reached at 1,000 labels, read on the monotone curve
    assert readouts.labels_to_match([10, 100, 1000], [0.6, 0.55, 0.7], 0.65) == pytest.approx(10 ** 2.5)


def test_label_equivalents_per_budget_and_arm():
    rows = []
    for labelled, k, ce, kd, honest in ((100, 1, 0.5, 0.6, 0.55), (1000, 10, 0.7, 0.8, 0.65), (9000, "all", 0.75, 0.8, None)):
        rows += [{"labels_per_class": k, "labelled": labelled, "method": "CE only", "seed": 0, "dev_accuracy": ce},
                 {"labels_per_class": k, "labelled": labelled, "method": "KD", "seed": 0, "dev_accuracy": kd}]
        if honest is not None:
            rows.append({"labels_per_class": k, "labelled": labelled, "method": HONEST_KD, "seed": 0,
                         "dev_accuracy": honest, "teacher_dev_accuracy": honest + 0.1})
    table = readouts.label_equivalents(rows)
    assert table.index.get_level_values("labelled").tolist() == [100, 1000, 9000]
    assert table["KD (%)"].tolist() == pytest.approx([60, 80, 80])
    assert table["its teacher (%)"].iloc[:2].tolist() == pytest.approx([65, 75])
    assert table["CE only needs, to match KD"].tolist() == [f"{math.sqrt(1e5):,.0f} (3.2×)", "more than all 9,000", ""]
    # the honest arm's 55 % at K = 1 is a quarter of the way from 50 % (100 labels) to 70 % (1,000): 10^2.25 labels
    assert table[f"CE only needs, to match {HONEST_KD}"].iloc[0] == f"{10 ** 2.25:,.0f} ({10 ** 2.25 / 100:.1f}×)"


def test_capacity_readout_gaps_steps_and_the_smallest_good_enough_size():
    rows = []
    for student, params, ce, kd in (("bag dim 8", 10, 0.70, 0.80), ("bag dim 16", 20, 0.75, 0.86), ("bag dim 32", 40, 0.78, 0.865)):
        for method, accuracy in (("CE only", ce), ("KD", kd)):
            rows.append({"kind": "bag", "student": student, "params": params, "method": method, "seed": 0,
                         "dev_accuracy": accuracy})
    table = readouts.capacity_readout(rows, spread=0.01)
    assert table["KD − CE (points)"].tolist() == pytest.approx([10, 11, 8.5])
    assert table["KD gain over the next smaller (points)"].iloc[1:].tolist() == pytest.approx([6, 0.5])
    assert table["smallest within the spread of the family's best"].tolist() == [False, True, False]


def test_remedy_gains_against_each_methods_own_baseline():
    rows = []
    for remedy, ce, kd in (("no remedy", 0.80, 0.88), ("dropout 0.3", 0.86, 0.885), ("weight decay 0.1", 0.81, 0.86)):
        for method, accuracy in (("CE only", ce), ("KD", kd)):
            rows.append({"remedy": remedy, "method": method, "epoch": 1, "train_accuracy": 0.99, "dev_accuracy": accuracy,
                         "kept_epoch": 1, "final_dev_accuracy": accuracy})
    table = readouts.remedy_gains(rows, threshold=1.0)
    assert table.index.tolist() == ["dropout 0.3", "weight decay 0.1"]
    assert table["CE only: vs no remedy (points)"].tolist() == pytest.approx([6, 1])
    assert table["KD: vs KD without remedy (points)"].tolist() == pytest.approx([0.5, -2])
    assert table["CE only with it vs KD without any (points)"].tolist() == pytest.approx([-2, -7])
    assert table["on KD: more than ±1.0"].tolist() == ["within noise", "hurts"]
