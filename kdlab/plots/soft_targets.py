"""Notebook 02's figures and numbers (previewed in notebook 00): softmax at a temperature, entropy, which intents look alike.

The numbers are numpy, so plots and widgets need no autograd; softmax is the same formula as kdlab.soft_targets.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..language import tr
from ..checks import check_temperature
from .style import FONT_SIZE, GOLD_COLOR, OKABE_ITO, _as_2d, _as_temperatures, _draws_on_axes, _new_axes_grid, _log_scale


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) along the last axis, in numpy; the same formula as kdlab.soft_targets.

    Introduced in notebook 00 (00-Welcome).
    """
    temperature = check_temperature(temperature)
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)  # subtracting the max keeps exp() from overflowing
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def entropy_bits(probs: np.ndarray) -> np.ndarray:
    """Entropy in bits along the last axis: 0 for a one-hot, log2(K) for a uniform distribution.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """
    probs = np.asarray(probs, dtype=np.float64)
    # 0 · log 0 counts as 0 (the limit), so one-hot rows give exactly 0.
    terms = np.where(probs > 0, -probs * np.log2(np.where(probs > 0, probs, 1.0)), 0.0)
    return terms.sum(axis=-1)


def effective_classes(probs: np.ndarray) -> np.ndarray:
    """2^H (H in bits, the perplexity): how many equally likely classes carry the same uncertainty.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """
    return np.exp2(entropy_bits(probs))


def entropy_curve(logits: np.ndarray, temperatures: Sequence[float]) -> dict[str, np.ndarray]:
    """Per-temperature mean, 10th and 90th percentile of the per-example entropy (bits).

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """
    logits = _as_2d(logits, "logits")
    temperatures = _as_temperatures(temperatures)
    per_t = np.stack([entropy_bits(softmax(logits, float(t))) for t in temperatures])  # (n_T, n_examples)
    return {
        "temperature": temperatures,
        "mean": per_t.mean(axis=1),
        "p10": np.percentile(per_t, 10, axis=1),
        "p90": np.percentile(per_t, 90, axis=1),
    }


def average_soft_targets(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row c = the teacher's average soft target over examples whose gold intent is c (rows sum to 1).

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """
    logits = _as_2d(logits, "logits")
    labels = np.asarray(labels).astype(int).ravel()
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries but logits has {logits.shape[0]} rows; must match")
    num_classes = logits.shape[1]
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), got {labels.min()} to {labels.max()}")
    probs = softmax(logits, temperature)
    sums = np.zeros((num_classes, num_classes))
    np.add.at(sums, labels, probs)
    counts = np.bincount(labels, minlength=num_classes)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def class_similarity(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Symmetric class-by-class similarity (M + Mᵀ)/2 of the average soft targets M: 'which intents look alike'.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """
    mean_targets = average_soft_targets(logits, labels, temperature)
    return (mean_targets + mean_targets.T) / 2


def most_similar_classes(similarity: np.ndarray, count: int = 20) -> list[int]:
    """The `count` classes with the most off-diagonal similarity, ordered so that look-alikes sit together.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be a square matrix, got shape {similarity.shape}")
    if not 1 <= count <= similarity.shape[0]:
        raise ValueError(f"count must be between 1 and {similarity.shape[0]}, got {count}")
    off = np.nan_to_num(similarity.copy())
    np.fill_diagonal(off, 0.0)
    chosen = [int(i) for i in np.argsort(-off.sum(axis=1), kind="stable")[:count]]
    # Greedy chain: start from the most confusable class, always step to its closest unvisited neighbour.
    order = [chosen[0]]
    left = set(chosen[1:])
    while left:
        last = order[-1]
        nxt = max(sorted(left), key=lambda j: off[last, j])
        order.append(nxt)
        left.remove(nxt)
    return order


def plot_softmax_toy(
    logits: Sequence[float], temperatures: Sequence[float] = (1, 4, 20), class_names: Sequence[str] | None = None,
    figure: Figure | None = None, *, axes=None,
) -> Figure:
    """One bar chart per temperature for a toy logit vector: see the distribution flatten as T grows.

    Draws on `axes` (one Axes per temperature) when given, else on `figure`, else on a new Figure; returns the
    Figure that holds the panels.

    Introduced in notebook 00 (00-Welcome).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1 or logits.size < 2:
        raise ValueError(f"logits must be a 1-D vector with at least 2 classes, got shape {logits.shape}")
    temperatures = _as_temperatures(temperatures)
    names = list(class_names) if class_names is not None else [tr("class {i}", i=i) for i in range(logits.size)]
    if len(names) != logits.size:
        raise ValueError(f"class_names has {len(names)} names but logits has {logits.size} classes")
    figure, axes = _new_axes_grid(axes, figure, (1, len(temperatures)), (4.2 * len(temperatures), 4.2), "plot_softmax_toy",
                                  sharey=True)
    for ax, t in zip(axes, temperatures):
        probs = softmax(logits, float(t))
        bars = ax.bar(range(logits.size), probs, color=OKABE_ITO["blue"])
        ax.bar_label(bars, labels=[f"{p:.2f}" for p in probs], fontsize=FONT_SIZE - 2)
        ax.set_xticks(range(logits.size), names, rotation=30, ha="right", fontsize=FONT_SIZE - 1)
        ax.set_title(tr("T = {t:g}   (entropy {value:.2f} bits)", t=t, value=entropy_bits(probs)), fontsize=FONT_SIZE + 1)
        ax.set_ylim(0, 1.08)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(tr("probability softmax(z / T)"), fontsize=FONT_SIZE)
    shown = ", ".join(f"{v:g}" for v in logits)
    figure.suptitle(tr("The same logits z = ({shown}) at {n_temperatures} temperature(s)", shown=shown, n_temperatures=len(temperatures)), fontsize=FONT_SIZE + 2)
    return figure


@_draws_on_axes(figsize=(8, 5))
def plot_distribution(
    probs: np.ndarray, label_names: Sequence[str], gold: int | None = None, top_k: int = 10,
    title: str | None = None, color: str = OKABE_ITO["blue"], xmax: float | None = 1.0, show_uniform: bool = False,
    *, show_rest: bool = False, ax: Axes | None = None,
) -> Axes:
    """Horizontal bars of the top-k classes by name, highest on top; the gold intent in vermillion.

    show_uniform=True adds a dashed line at 1/K (K = number of classes): where every bar ends when the
    distribution is flat, so "flat" is visible even when all bars are short on a 0–1 axis.
    show_rest=True adds a grey bottom bar "other N intents" holding the mass of every class not shown, so the
    bars sum to 1 and a spread-out distribution cannot hide its tail.

    Introduced in notebook 00 (00-Welcome).
    """
    probs = np.asarray(probs, dtype=np.float64).ravel()
    if len(label_names) != probs.size:
        raise ValueError(f"label_names has {len(label_names)} names but probs has {probs.size} classes")
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an integer ≥ 1, got {top_k!r}")
    if gold is not None and not 0 <= gold < probs.size:
        raise ValueError(f"gold must be a class index in [0, {probs.size}), got {gold}")
    top = [int(i) for i in np.argsort(-probs, kind="stable")[: min(top_k, probs.size)]]
    names = [label_names[i] for i in top]
    if gold is not None and gold not in top:
        # Keep the gold intent visible even when the model ranks it low: that is the interesting case.
        rank = int((probs > probs[gold]).sum()) + 1
        top.append(gold)
        names.append(tr("{name} (rank {rank})", name=label_names[gold], rank=rank))
    values = probs[top]
    colors = [GOLD_COLOR if i == gold else color for i in top]
    labels = [f"★ {n}" if i == gold else n for i, n in zip(top, names)]
    if show_rest and len(top) < probs.size:
        values = np.append(values, max(probs.sum() - values.sum(), 0.0))
        colors.append(OKABE_ITO["grey"])
        labels.append(tr("other {n} intents", n=probs.size - len(top)))
    rows = np.arange(len(values))[::-1]  # first = highest = top row
    ax.barh(rows, values, color=colors, edgecolor="none")
    uniform = 1 / probs.size
    for row, value in zip(rows, values):
        # Value labels start right of the dashed uniform line when a bar ends before it, so the line never crosses them.
        end = max(value, uniform) if show_uniform else value
        ax.annotate(f"{value:.3f}", (end, row), xytext=(4, 0), textcoords="offset points", va="center",
                    fontsize=FONT_SIZE - 2)
    ax.set_yticks(rows, labels, fontsize=FONT_SIZE - 1)
    for tick, i in zip(ax.get_yticklabels(), top):
        if i == gold:
            tick.set_color(GOLD_COLOR)
            tick.set_fontweight("bold")
    if show_uniform:
        ax.axvline(uniform, color=OKABE_ITO["black"], linestyle=(0, (4, 3)), linewidth=1.6, zorder=3,
                   label=tr("uniform 1/{size} = {uniform:.3f}", size=probs.size, uniform=uniform))
        # Lower right is always free: rows are sorted, so the bottom bars are the shortest.
        ax.legend(loc="lower right", fontsize=FONT_SIZE - 1, framealpha=0.9)
    if xmax is not None:
        ax.set_xlim(0, xmax * 1.12)  # room for the value labels
    ax.set_xlabel(tr("probability"), fontsize=FONT_SIZE)
    ax.grid(axis="x", alpha=0.3)
    if title is not None:
        ax.set_title(tr(title), fontsize=FONT_SIZE + 1)
    return ax


@_draws_on_axes(figsize=(10, 5.5))
def plot_entropy_vs_temperature(
    logits: np.ndarray, temperatures: Sequence[float] | None = None, label: str = "teacher",
    color: str = OKABE_ITO["blue"], show_max: bool = True, *, ax: Axes | None = None,
) -> Axes:
    """Mean per-example entropy (bits) against T on a log axis, with the 10–90 % band of examples.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """
    logits = _as_2d(logits, "logits")
    temperatures = np.geomspace(0.1, 50, 40) if temperatures is None else temperatures
    curve = entropy_curve(logits, temperatures)
    ax.fill_between(curve["temperature"], curve["p10"], curve["p90"], color=color, alpha=0.25,
                    label=tr("{label}: 10–90 % of examples", label=label))
    ax.plot(curve["temperature"], curve["mean"], color=color, linewidth=2.5, label=tr("{label}: mean", label=label))
    if show_max:
        top = np.log2(logits.shape[1])
        ax.axhline(top, color=OKABE_ITO["black"], linestyle="--", linewidth=1.2,
                   label=tr("uniform over {value} classes = log2({value}) = {top:.2f} bits", value=logits.shape[1], top=top))
    _log_scale(ax, "x")
    ax.set_xlabel(tr("temperature T (log scale)"), fontsize=FONT_SIZE)
    ax.set_ylabel(tr("entropy of softmax(z / T)  [bits]"), fontsize=FONT_SIZE)
    ax.set_title(tr("How flat the soft targets get as T grows ({value} examples)", value=logits.shape[0]), fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=FONT_SIZE - 2, loc="lower right")
    return ax


@_draws_on_axes(figsize=(11, 9.5))
def plot_similarity_map(
    similarity: np.ndarray, label_names: Sequence[str], classes: Sequence[int] | None = None,
    title: str = "Which intents the teacher thinks look alike", hide_diagonal: bool = True, cmap: str = "viridis",
    colorbar_label: str = "average probability (symmetrised)", *, ax: Axes | None = None,
) -> Axes:
    """Heat map of a class-by-class matrix for a subset of classes, names on both axes.

    Introduced in notebook 02 (02-Soft-Targets-and-Temperature).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be a square matrix, got shape {similarity.shape}")
    if len(label_names) != similarity.shape[0]:
        raise ValueError(f"label_names has {len(label_names)} names but similarity is {similarity.shape[0]}×{similarity.shape[0]}")
    classes = list(range(similarity.shape[0])) if classes is None else [int(c) for c in classes]
    sub = similarity[np.ix_(classes, classes)].copy()
    if hide_diagonal:
        # The diagonal (mass on the right intent) would swamp the colour scale; grey it out.
        np.fill_diagonal(sub, np.nan)
    image = ax.imshow(sub, cmap=colormaps[cmap].with_extremes(bad=OKABE_ITO["grey"]), interpolation="nearest")
    names = [label_names[c] for c in classes]
    size = FONT_SIZE - 1 if len(classes) <= 20 else FONT_SIZE - 3
    ax.set_xticks(range(len(classes)), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=size)
    ax.set_yticks(range(len(classes)), names, fontsize=size)
    ax.set_title(tr(title), fontsize=FONT_SIZE + 1)
    colorbar = ax.figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label(tr(colorbar_label), fontsize=FONT_SIZE - 1)
    return ax
