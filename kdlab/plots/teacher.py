"""Notebook 01's figures: what the teacher sees (token vectors, mean pooling) and where it goes wrong (confusions)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes

from ..language import tr
from .soft_targets import most_similar_classes
from .style import FONT_SIZE, OKABE_ITO, _as_2d, _draws_on_axes


def confusion_counts(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j] = how many examples of gold class i were predicted as class j.

    Introduced in notebook 01 (01-Teacher-Setup), behind `top_confusions` and `plot_confusions`.
    """
    predictions = np.asarray(predictions).astype(int).ravel()
    labels = np.asarray(labels).astype(int).ravel()
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions ({predictions.shape[0]}) and labels ({labels.shape[0]}) must have the same length")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def top_confusions(predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str], top: int = 10):
    """The most frequent (gold → predicted) mistakes, by name, as a pandas DataFrame.

    Introduced in notebook 01 (01-Teacher-Setup).
    """
    import pandas as pd

    if top < 1:
        raise ValueError(f"top must be ≥ 1, got {top}")
    counts = confusion_counts(predictions, labels, len(label_names))
    support = counts.sum(axis=1)
    rows = [{
        "gold intent": label_names[gold], "predicted as": label_names[pred], "count": int(counts[gold, pred]),
        "share of gold (%)": round(100 * counts[gold, pred] / max(support[gold], 1), 1),
    } for gold, pred in _confused_pairs(counts, top)]
    return pd.DataFrame(rows, columns=["gold intent", "predicted as", "count", "share of gold (%)"])


@_draws_on_axes(figsize=(11, 5.5))
def plot_token_vectors(
    hidden: np.ndarray, tokens: Sequence[str], pooled: np.ndarray | None = None, dims: int = 32,
    title: str = "One vector per WordPiece token, and their average", *, ax: Axes | None = None,
) -> Axes:
    """Heat map of token vectors (rows) with the mean-pooled sentence vector as the last row.

    Introduced in notebook 01 (01-Teacher-Setup).
    """
    hidden = _as_2d(hidden, "hidden")
    if len(tokens) != hidden.shape[0]:
        raise ValueError(f"tokens has {len(tokens)} entries but hidden has {hidden.shape[0]} rows")
    if dims < 1:
        raise ValueError(f"dims must be ≥ 1, got {dims}")
    dims = min(dims, hidden.shape[1])
    rows = hidden[:, :dims]
    names = list(tokens)
    if pooled is not None:
        pooled = np.asarray(pooled.detach().cpu() if hasattr(pooled, "detach") else pooled, dtype=np.float64).ravel()
        rows = np.vstack([rows, pooled[:dims]])
        names.append("MEAN POOLED")
    limit = np.abs(rows).max() or 1.0
    image = ax.imshow(rows, cmap="PuOr", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    if pooled is not None:
        ax.axhline(len(tokens) - 0.5, color="black", linewidth=3)
    ax.set_yticks(range(len(names)), names, fontsize=FONT_SIZE - 1)
    ax.set_xlabel(tr("vector dimension (first {dims} of {value})", dims=dims, value=hidden.shape[1]), fontsize=FONT_SIZE)
    ax.set_title(tr(title), fontsize=FONT_SIZE + 1)
    colorbar = ax.figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label(tr("activation (no unit)"), fontsize=FONT_SIZE - 1)
    return ax


def _confused_pairs(counts: np.ndarray, top: int) -> list[tuple[int, int]]:
    """The `top` most frequent (gold, predicted) mistakes, most frequent first, ties by index (as `top_confusions`)."""
    off = counts.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:top]
    return [(int(g), int(p)) for g, p in zip(*np.unravel_index(flat, off.shape)) if off[g, p] > 0]


@_draws_on_axes(figsize=(11, 9.5))
def plot_confusions(
    predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str], count: int = 12,
    title: str | None = None, *, pairs: int | None = None, ax: Axes | None = None,
) -> Axes:
    """Confusion counts among the intents behind the most mistakes; the diagonal (correct answers) is masked.

    With `pairs=k` the map shows exactly the intents of the k most frequent mistakes (the rows of
    `top_confusions(..., top=k)`) and outlines those k cells; otherwise the `count` intents involved in the most mistakes.

    Introduced in notebook 01 (01-Teacher-Setup).
    """
    from matplotlib.patches import Patch, Rectangle

    counts = confusion_counts(predictions, labels, len(label_names))
    off = counts.astype(np.float64)
    np.fill_diagonal(off, 0.0)
    outlined: list[tuple[int, int]] = []
    if pairs is not None:
        if pairs < 1:
            raise ValueError(f"pairs must be ≥ 1, got {pairs}")
        outlined = _confused_pairs(counts, pairs)
        if not outlined:
            raise ValueError("there are no mistakes to show: every prediction equals its label")
        involved = sorted({c for pair in outlined for c in pair})
        order = most_similar_classes((off + off.T)[np.ix_(involved, involved)], len(involved))
        classes = [involved[i] for i in order]
    else:
        if not 2 <= count <= len(label_names):
            raise ValueError(f"count must be between 2 and {len(label_names)}, got {count}")
        classes = most_similar_classes(off + off.T, count)
    sub = off[np.ix_(classes, classes)]
    diagonal = np.eye(len(classes), dtype=bool)
    shown = np.ma.masked_where(diagonal, sub)
    image = ax.imshow(shown, cmap=colormaps["cividis"].with_extremes(bad="white"), vmin=0, interpolation="nearest")
    for i in range(len(classes)):  # the masked diagonal: white, hatched, no number
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, facecolor="white", edgecolor=OKABE_ITO["grey"], hatch="///",
                               linewidth=0))
    vmax = sub.max() if sub.max() > 0 else 1.0
    for i in range(len(classes)):
        for j in range(len(classes)):
            if i != j and sub[i, j] > 0:
                ax.text(j, i, int(sub[i, j]), ha="center", va="center", fontsize=FONT_SIZE - 2,
                        color="black" if sub[i, j] > 0.6 * vmax else "white")
    position = {c: k for k, c in enumerate(classes)}
    for gold, pred in outlined:
        ax.add_patch(Rectangle((position[pred] - 0.5, position[gold] - 0.5), 1, 1, fill=False,
                               edgecolor=OKABE_ITO["orange"], linewidth=3))
    names = [label_names[c] for c in classes]
    ax.set_xticks(range(len(classes)), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=FONT_SIZE - 2)
    ax.set_yticks(range(len(classes)), names, fontsize=FONT_SIZE - 2)
    ax.set_xlabel(tr("predicted intent"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("gold intent"), fontsize=FONT_SIZE)
    default = (tr("Mistakes among the intents of the top-{n} pairs (count of test queries)", n=len(outlined)) if outlined
               else tr("Mistakes among the {count} most-confused intents (count of test queries)", count=count))
    ax.set_title(tr(title) or default, fontsize=FONT_SIZE + 1)
    colorbar = ax.figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label(tr("mistakes (test queries); diagonal not counted"), fontsize=FONT_SIZE - 1)
    handles = [Patch(facecolor="white", edgecolor=OKABE_ITO["grey"], hatch="///", label=tr("diagonal: correct answers, not counted"))]
    if outlined:
        handles.append(Patch(fill=False, edgecolor=OKABE_ITO["orange"], linewidth=3, label=tr("one of the top-{n_outlined} pairs", n_outlined=len(outlined))))
    ax.legend(handles=handles, loc="upper right", fontsize=FONT_SIZE - 2, framealpha=0.95)  # over the empty corner
    return ax
