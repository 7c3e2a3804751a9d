"""What a grid says, as tables: the comparisons notebooks 06 and 07 ask the learner to read.

Each function turns the rows of a `kdlab.tuning` experiment (live or a saved full grid) into one small table,
so a notebook shows a table and asks a question instead of printing its own conclusions. Accuracies are in %,
differences in percentage points; "spread" is the seed-to-seed standard deviation of one setting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .plots.tuning import remedy_table
from .tuning import HONEST_KD, summarize


def typical_spread(rows, by: list[str]) -> float:
    """The median seed-to-seed std of a setting (accuracy units): how far apart two settings must be to be told apart."""
    summary = summarize(pd.DataFrame(rows), by)
    several = summary[summary["count"] > 1]
    return float(several["std"].median()) if len(several) else 0.0


def sweep_readout(rows) -> pd.DataFrame:
    """Every (T, λ) cell ranked by mean dev accuracy, with its spread and whether it is within a typical spread of the best (notebook 06)."""
    summary = summarize(pd.DataFrame(rows), ["temperature", "lam"])
    spread = typical_spread(rows, ["temperature", "lam"])
    behind = summary["mean"].max() - summary["mean"]
    table = pd.DataFrame({
        "T": summary["temperature"], "λ": summary["lam"], "dev, mean (%)": 100 * summary["mean"],
        "spread over seeds (points)": 100 * summary["std"], "behind the best (points)": 100 * behind,
        "within a typical spread of the best": behind <= spread + 1e-12,
    })
    return table.sort_values(["dev, mean (%)", "T", "λ"], ascending=[False, True, True]).reset_index(drop=True)


def lambda_readout(rows) -> pd.DataFrame:
    """Per λ: dev accuracy averaged over every T, and the best T with its accuracy — Hinton's two rules side by side (notebook 06)."""
    summary = summarize(pd.DataFrame(rows), ["temperature", "lam"])
    best = summary.loc[summary.groupby("lam")["mean"].idxmax()].set_index("lam")
    return pd.DataFrame({
        "dev, mean over all T (%)": 100 * summary.groupby("lam")["mean"].mean(),
        "best T": best["temperature"], "dev at the best T (%)": 100 * best["mean"],
    }).rename_axis("λ")


def labels_to_match(ce_labelled, ce_accuracy, accuracy: float) -> float:
    """Labelled queries CE only needs to reach `accuracy`, read off its curve on a log axis (inf beyond its last point) (notebook 07)."""
    labelled = np.asarray(ce_labelled, dtype=float)
    curve = np.maximum.accumulate(np.asarray(ce_accuracy, dtype=float)[np.argsort(labelled)])  # monotone: readable backwards
    labelled = np.sort(labelled)
    if accuracy > curve[-1]:
        return float("inf")
    return float(np.exp(np.interp(accuracy, curve, np.log(labelled))))


def label_equivalents(rows) -> pd.DataFrame:
    """Per label budget: each arm's dev accuracy, and how many labels CE only needs to match each KD arm (notebook 07).

    "more than all" means the KD arm beats CE only with every training label: no number of labels buys it.
    """
    frame = pd.DataFrame(rows)
    frame["labels_per_class"] = frame["labels_per_class"].astype(str)
    curve = summarize(frame, ["labels_per_class", "labelled", "method"]).pivot_table(
        index=["labels_per_class", "labelled"], columns="method", values="mean").sort_index(level="labelled")
    ce = curve["CE only"].dropna()
    everything = int(ce.index.get_level_values("labelled").max())
    table = pd.DataFrame(index=curve.index)
    for method in [m for m in ("CE only", "KD", HONEST_KD) if m in curve.columns]:
        table[f"{method} (%)"] = 100 * curve[method]
    if HONEST_KD in frame["method"].values:
        teachers = frame[frame["method"] == HONEST_KD].groupby(["labels_per_class", "labelled"])["teacher_dev_accuracy"].mean()
        table["its teacher (%)"] = 100 * teachers
    for method in [m for m in ("KD", HONEST_KD) if m in curve.columns]:
        column = []
        for (_, labelled), accuracy in curve[method].items():
            if np.isnan(accuracy) or labelled == everything:
                column.append("")
                continue
            count = labels_to_match(ce.index.get_level_values("labelled"), ce.to_numpy(), accuracy)
            column.append(f"more than all {everything:,}" if np.isinf(count) else f"{count:,.0f} ({count / labelled:.1f}×)")
        table[f"CE only needs, to match {method}"] = column
    return table.rename_axis(["K per intent", "labelled"])


def capacity_readout(rows, spread: float | None = None) -> pd.DataFrame:
    """Per family and size: CE, KD, their gap, what each size step buys with KD, and the smallest size within `spread` of the family's best (notebook 07).

    `spread` (accuracy units) defaults to the typical seed-to-seed spread of the rows themselves.
    """
    frame = pd.DataFrame(rows)
    spread = typical_spread(frame, ["student", "method"]) if spread is None else spread
    table = summarize(frame, ["kind", "student", "params", "method"]).pivot_table(
        index=["kind", "student", "params"], columns="method", values="mean").reset_index()
    table = table.sort_values(["kind", "params"]).reset_index(drop=True)
    table["KD − CE (points)"] = 100 * (table["KD"] - table["CE only"])
    table["KD gain over the next smaller (points)"] = 100 * table.groupby("kind")["KD"].diff()
    enough = table.groupby("kind")["KD"].transform(lambda kd: kd >= kd.max() - spread - 1e-12)
    smallest = table[enough].groupby("kind").head(1).index  # rows are sorted by size within each family
    table["smallest within the spread of the family's best"] = table.index.isin(smallest)
    table[["CE only", "KD"]] = 100 * table[["CE only", "KD"]]
    return table.rename(columns={"CE only": "CE only (%)", "KD": "KD (%)"}).set_index(["kind", "student", "params"])


def remedy_gains(rows, threshold: float) -> pd.DataFrame:
    """Per remedy: what it adds to CE only and to KD (dev of the kept model, points), and whether that passes `threshold` points (notebook 06)."""
    kept = remedy_table(rows)["dev of the kept model (%)"].unstack("method")
    gains = pd.DataFrame({
        "CE only: vs no remedy (points)": kept["CE only"] - kept.loc["no remedy", "CE only"],
        "KD: vs KD without remedy (points)": kept["KD"] - kept.loc["no remedy", "KD"],
        "CE only with it vs KD without any (points)": kept["CE only"] - kept.loc["no remedy", "KD"],
    }).drop("no remedy")
    gains[f"on KD: more than ±{threshold:.1f}"] = np.select(
        [gains["KD: vs KD without remedy (points)"] > threshold, gains["KD: vs KD without remedy (points)"] < -threshold],
        ["helps", "hurts"], "within noise")
    return gains.rename_axis("remedy")
