"""Figures the lessons share: soft targets, temperature, entropy, confusions, dark knowledge.

Every plot draws on an Axes you pass in (or makes its own Figure) and returns it, so notebooks,
widgets and tests use the same code. Colours come from the Okabe-Ito palette (colour-blind safe);
maps use viridis/cividis. Class names, not indices, go on the axes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000", "grey": "#999999",
}
MODEL_COLORS = [OKABE_ITO[c] for c in ("blue", "green", "purple", "sky", "yellow")]
GOLD_COLOR = OKABE_ITO["vermillion"]
FONT_SIZE = 12  # big enough to read from the back of a workshop room


# --- the numbers behind the pictures (numpy, so plots and widgets need no autograd) ---

def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) along the last axis, in numpy; the same formula as kdlab.soft_targets."""
    _check_temperature(temperature)
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)  # subtracting the max keeps exp() from overflowing
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def entropy_bits(probs: np.ndarray) -> np.ndarray:
    """Entropy in bits along the last axis: 0 for a one-hot, log2(K) for a uniform distribution."""
    probs = np.asarray(probs, dtype=np.float64)
    # 0 · log 0 counts as 0 (the limit), so one-hot rows give exactly 0.
    terms = np.where(probs > 0, -probs * np.log2(np.where(probs > 0, probs, 1.0)), 0.0)
    return terms.sum(axis=-1)


def effective_classes(probs: np.ndarray) -> np.ndarray:
    """2^H (H in bits, the perplexity): how many equally likely classes carry the same uncertainty."""
    return np.exp2(entropy_bits(probs))


def entropy_curve(logits: np.ndarray, temperatures: Sequence[float]) -> dict[str, np.ndarray]:
    """Per-temperature mean, 10th and 90th percentile of the per-example entropy (bits)."""
    logits = _as_2d(logits, "logits")
    temperatures = np.asarray(list(temperatures), dtype=np.float64)
    if temperatures.size == 0:
        raise ValueError("temperatures must contain at least one value")
    for t in temperatures:
        _check_temperature(float(t))
    per_t = np.stack([entropy_bits(softmax(logits, float(t))) for t in temperatures])  # (n_T, n_examples)
    return {
        "temperature": temperatures,
        "mean": per_t.mean(axis=1),
        "p10": np.percentile(per_t, 10, axis=1),
        "p90": np.percentile(per_t, 90, axis=1),
    }


def average_soft_targets(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row c = the teacher's average soft target over examples whose gold intent is c (rows sum to 1)."""
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
    """Symmetric class-by-class similarity (M + Mᵀ)/2 of the average soft targets M: 'which intents look alike'."""
    mean_targets = average_soft_targets(logits, labels, temperature)
    return (mean_targets + mean_targets.T) / 2


def most_similar_classes(similarity: np.ndarray, count: int = 20) -> list[int]:
    """The `count` classes with the most off-diagonal similarity, ordered so that look-alikes sit together."""
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


def confusion_counts(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j] = how many examples of gold class i were predicted as class j."""
    predictions = np.asarray(predictions).astype(int).ravel()
    labels = np.asarray(labels).astype(int).ravel()
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions ({predictions.shape[0]}) and labels ({labels.shape[0]}) must have the same length")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def top_confusions(predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str], top: int = 10):
    """The most frequent (gold → predicted) mistakes, by name, as a pandas DataFrame."""
    import pandas as pd

    if top < 1:
        raise ValueError(f"top must be ≥ 1, got {top}")
    counts = confusion_counts(predictions, labels, len(label_names))
    support = counts.sum(axis=1)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:top]
    rows = []
    for gold, pred in zip(*np.unravel_index(flat, off.shape)):
        if off[gold, pred] == 0:
            break
        rows.append({
            "gold intent": label_names[gold], "predicted as": label_names[pred], "count": int(off[gold, pred]),
            "share of gold (%)": round(100 * off[gold, pred] / max(support[gold], 1), 1),
        })
    return pd.DataFrame(rows, columns=["gold intent", "predicted as", "count", "share of gold (%)"])


# --- plots ---

def plot_softmax_toy(
    logits: Sequence[float], temperatures: Sequence[float] = (1, 4, 20), class_names: Sequence[str] | None = None,
    figure: Figure | None = None,
) -> Figure:
    """One bar chart per temperature for a toy logit vector: see the distribution flatten as T grows."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1 or logits.size < 2:
        raise ValueError(f"logits must be a 1-D vector with at least 2 classes, got shape {logits.shape}")
    if len(temperatures) == 0:
        raise ValueError("temperatures must contain at least one value")
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(logits.size)]
    if len(names) != logits.size:
        raise ValueError(f"class_names has {len(names)} names but logits has {logits.size} classes")
    figure = figure or Figure(figsize=(4.2 * len(temperatures), 4.2), layout="constrained")
    axes = figure.subplots(1, len(temperatures), sharey=True, squeeze=False)[0]
    for ax, t in zip(axes, temperatures):
        probs = softmax(logits, float(t))
        bars = ax.bar(range(logits.size), probs, color=OKABE_ITO["blue"])
        ax.bar_label(bars, labels=[f"{p:.2f}" for p in probs], fontsize=FONT_SIZE - 2)
        ax.set_xticks(range(logits.size), names, rotation=30, ha="right", fontsize=FONT_SIZE - 1)
        ax.set_title(f"T = {t:g}   (entropy {entropy_bits(probs):.2f} bits)", fontsize=FONT_SIZE + 1)
        ax.set_ylim(0, 1.08)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("probability softmax(z / T)", fontsize=FONT_SIZE)
    shown = ", ".join(f"{v:g}" for v in logits)
    figure.suptitle(f"The same logits z = ({shown}) at {len(temperatures)} temperature(s)", fontsize=FONT_SIZE + 2)
    return figure


def plot_distribution(
    ax: Axes, probs: np.ndarray, label_names: Sequence[str], gold: int | None = None, top_k: int = 10,
    title: str | None = None, color: str = OKABE_ITO["blue"], xmax: float | None = 1.0, show_uniform: bool = False,
) -> Axes:
    """Horizontal bars of the top-k classes by name, highest on top; the gold intent in vermillion.

    show_uniform=True adds a dashed line at 1/K (K = number of classes): where every bar ends when the
    distribution is flat, so "flat" is visible even when all bars are short on a 0–1 axis.
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
        names.append(f"{label_names[gold]} (rank {rank})")
    rows = np.arange(len(top))[::-1]  # first = highest = top row
    colors = [GOLD_COLOR if i == gold else color for i in top]
    ax.barh(rows, probs[top], color=colors, edgecolor="none")
    uniform = 1 / probs.size
    for row, i in zip(rows, top):
        # Value labels start right of the dashed uniform line when a bar ends before it, so the line never crosses them.
        end = max(probs[i], uniform) if show_uniform else probs[i]
        ax.annotate(f"{probs[i]:.3f}", (end, row), xytext=(4, 0), textcoords="offset points", va="center",
                    fontsize=FONT_SIZE - 2)
    ax.set_yticks(rows, [f"★ {n}" if i == gold else n for i, n in zip(top, names)], fontsize=FONT_SIZE - 1)
    for tick, i in zip(ax.get_yticklabels(), top):
        if i == gold:
            tick.set_color(GOLD_COLOR)
            tick.set_fontweight("bold")
    if show_uniform:
        ax.axvline(uniform, color=OKABE_ITO["black"], linestyle=(0, (4, 3)), linewidth=1.6, zorder=3,
                   label=f"uniform 1/{probs.size} = {uniform:.3f}")
        # Lower right is always free: rows are sorted, so the bottom bars are the shortest.
        ax.legend(loc="lower right", fontsize=FONT_SIZE - 1, framealpha=0.9)
    if xmax is not None:
        ax.set_xlim(0, xmax * 1.12)  # room for the value labels
    ax.set_xlabel("probability", fontsize=FONT_SIZE)
    ax.grid(axis="x", alpha=0.3)
    if title is not None:
        ax.set_title(title, fontsize=FONT_SIZE + 1)
    return ax


def plot_entropy_vs_temperature(
    ax: Axes, logits: np.ndarray, temperatures: Sequence[float] | None = None, label: str = "teacher",
    color: str = OKABE_ITO["blue"], show_max: bool = True,
) -> Axes:
    """Mean per-example entropy (bits) against T on a log axis, with the 10–90 % band of examples."""
    logits = _as_2d(logits, "logits")
    temperatures = np.geomspace(0.1, 50, 40) if temperatures is None else temperatures
    curve = entropy_curve(logits, temperatures)
    ax.fill_between(curve["temperature"], curve["p10"], curve["p90"], color=color, alpha=0.25,
                    label=f"{label}: 10–90 % of examples")
    ax.plot(curve["temperature"], curve["mean"], color=color, linewidth=2.5, label=f"{label}: mean")
    if show_max:
        top = np.log2(logits.shape[1])
        ax.axhline(top, color=OKABE_ITO["black"], linestyle="--", linewidth=1.2,
                   label=f"uniform over {logits.shape[1]} classes = log2({logits.shape[1]}) = {top:.2f} bits")
    ax.set_xscale("log")
    ax.set_xlabel("temperature T (log scale)", fontsize=FONT_SIZE)
    ax.set_ylabel("entropy of softmax(z / T)  [bits]", fontsize=FONT_SIZE)
    ax.set_title(f"How flat the soft targets get as T grows ({logits.shape[0]} examples)", fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=FONT_SIZE - 2, loc="lower right")
    return ax


def plot_similarity_map(
    ax: Axes, similarity: np.ndarray, label_names: Sequence[str], classes: Sequence[int] | None = None,
    title: str = "Which intents the teacher thinks look alike", hide_diagonal: bool = True, cmap: str = "viridis",
    colorbar_label: str = "average probability (symmetrised)",
) -> Axes:
    """Heat map of a class-by-class matrix for a subset of classes, names on both axes."""
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
    ax.set_title(title, fontsize=FONT_SIZE + 1)
    colorbar = ax.figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label(colorbar_label, fontsize=FONT_SIZE - 1)
    return ax


def plot_confusions(
    ax: Axes, predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str], count: int = 12,
    title: str | None = None,
) -> Axes:
    """Confusion counts among the `count` intents involved in the most mistakes (diagonal greyed out)."""
    counts = confusion_counts(predictions, labels, len(label_names))
    if not 2 <= count <= len(label_names):
        raise ValueError(f"count must be between 2 and {len(label_names)}, got {count}")
    off = counts.astype(np.float64)
    np.fill_diagonal(off, 0.0)
    classes = most_similar_classes(off + off.T, count)
    sub = off[np.ix_(classes, classes)]
    shown = np.where(np.eye(len(classes), dtype=bool), np.nan, sub)
    image = ax.imshow(shown, cmap=colormaps["cividis"].with_extremes(bad=OKABE_ITO["grey"]), interpolation="nearest")
    vmax = np.nanmax(shown) if np.isfinite(shown).any() else 1.0
    for i in range(len(classes)):
        for j in range(len(classes)):
            if i != j and sub[i, j] > 0:
                ax.text(j, i, int(sub[i, j]), ha="center", va="center", fontsize=FONT_SIZE - 2,
                        color="black" if sub[i, j] > 0.6 * vmax else "white")
    names = [label_names[c] for c in classes]
    ax.set_xticks(range(len(classes)), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=FONT_SIZE - 2)
    ax.set_yticks(range(len(classes)), names, fontsize=FONT_SIZE - 2)
    ax.set_xlabel("predicted intent", fontsize=FONT_SIZE)
    ax.set_ylabel("gold intent", fontsize=FONT_SIZE)
    ax.set_title(title or f"Mistakes among the {count} most-confused intents (count of test queries)", fontsize=FONT_SIZE + 1)
    colorbar = ax.figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label("queries (off-diagonal only)", fontsize=FONT_SIZE - 1)
    return ax


def plot_token_vectors(
    ax: Axes, hidden: np.ndarray, tokens: Sequence[str], pooled: np.ndarray | None = None, dims: int = 32,
    title: str = "One vector per WordPiece token, and their average",
) -> Axes:
    """Heat map of token vectors (rows) with the mean-pooled sentence vector as the last row."""
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
    ax.set_xlabel(f"vector dimension (first {dims} of {hidden.shape[1]})", fontsize=FONT_SIZE)
    ax.set_title(title, fontsize=FONT_SIZE + 1)
    colorbar = ax.figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label("activation (no unit)", fontsize=FONT_SIZE - 1)
    return ax


# --- validation ---

def _check_temperature(temperature: float) -> None:
    """Reject temperatures that would divide by zero or flip the softmax."""
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def _as_2d(array, name: str) -> np.ndarray:
    """Accept a tensor or array of shape (examples, classes), as float64 numpy."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(f"{name} must be 2-D (examples ≥ 1, classes ≥ 2), got shape {array.shape}")
    return array


# --- the distillation loss and the training curves (notebooks 03 and 04) ---

# One colour per loss term, used by every loss figure so "orange = soft targets" holds across lessons.
CE_COLOR = OKABE_ITO["blue"]
KD_COLOR = OKABE_ITO["orange"]


def _as_logit_tensor(array, name: str):
    """Logits as a float64 torch tensor of shape (examples, classes), so gradients are exact enough to compare."""
    import torch

    return torch.as_tensor(_as_2d(array, name))


def _as_temperatures(temperatures: Sequence[float]) -> np.ndarray:
    values = np.asarray(list(temperatures), dtype=np.float64)
    if values.size == 0:
        raise ValueError("temperatures must contain at least one value")
    for t in values:
        _check_temperature(float(t))
    return values


def _pair(student_logits, teacher_logits):
    student = _as_logit_tensor(student_logits, "student_logits")
    teacher = _as_logit_tensor(teacher_logits, "teacher_logits")
    if student.shape != teacher.shape:
        raise ValueError(f"student_logits has shape {tuple(student.shape)} but teacher_logits has "
                         f"{tuple(teacher.shape)}; they must match")
    return student, teacher


def kd_gradient_norms(student_logits, teacher_logits, temperatures: Sequence[float]) -> dict[str, np.ndarray]:
    """Per T, the mean per-example size of the gradient the soft term sends to the student: why T² is there."""
    import torch

    from .losses import distillation_terms

    student, teacher = _pair(student_logits, teacher_logits)
    temperatures = _as_temperatures(temperatures)
    with_t2 = []
    for t in temperatures:
        z = student.clone().requires_grad_()
        (grad,) = torch.autograd.grad(distillation_terms(z, teacher, None, float(t)).kd, z)
        # ×batch size: the batch mean hands each example 1/B of its pull; undo that to show one example's.
        with_t2.append(float((grad * len(z)).norm(dim=1).mean()))
    with_t2 = np.asarray(with_t2)
    return {"temperature": temperatures, "with_t_squared": with_t2, "without_t_squared": with_t2 / temperatures**2}


def logit_matching_gap(student_logits, teacher_logits, temperatures: Sequence[float]) -> dict[str, np.ndarray]:
    """Per T, how far the T²·KL gradient is from logit matching (z_s − z_t)/(N·B): Hinton's high-T limit."""
    import torch

    from .losses import distillation_terms

    student, teacher = _pair(student_logits, teacher_logits)
    temperatures = _as_temperatures(temperatures)
    batch, classes = student.shape
    # The limit assumes zero-mean logits per example (softmax ignores the mean anyway).
    centred = (student - student.mean(1, keepdim=True)) - (teacher - teacher.mean(1, keepdim=True))
    limit = centred / (classes * batch)
    gaps = []
    for t in temperatures:
        z = student.clone().requires_grad_()
        (grad,) = torch.autograd.grad(distillation_terms(z, teacher, None, float(t)).kd, z)
        gaps.append(float((grad - limit).norm() / limit.norm()))
    return {"temperature": temperatures, "relative_error": np.asarray(gaps)}


def plot_gradient_vs_temperature(
    ax: Axes, student_logits, teacher_logits, temperatures: Sequence[float] | None = None,
    labels=None,
) -> Axes:
    """Log-log plot of the soft term's gradient size against T, with and without T², on real logits."""
    temperatures = np.geomspace(0.5, 100, 40) if temperatures is None else temperatures
    norms = kd_gradient_norms(student_logits, teacher_logits, temperatures)
    t = norms["temperature"]
    ax.plot(t, norms["with_t_squared"], color=KD_COLOR, linewidth=2.5, label="T²·KL  (kdlab, Hinton et al.)")
    ax.plot(t, norms["without_t_squared"], color=KD_COLOR, linewidth=2.5, linestyle="--", label="KL alone (T² forgotten)")
    if labels is not None:
        import torch

        student = _as_logit_tensor(student_logits, "student_logits")
        labels = torch.as_tensor(np.asarray(labels)).long()
        if labels.shape != (student.shape[0],):
            raise ValueError(f"labels must have one entry per row of student_logits ({student.shape[0]}), "
                             f"got shape {tuple(labels.shape)}")
        hard = torch.softmax(student, dim=1) - torch.nn.functional.one_hot(labels, student.shape[1])
        ax.axhline(float(hard.norm(dim=1).mean()), color=CE_COLOR, linewidth=2,
                   label="hard-label CE term (does not depend on T)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("temperature T (log scale)", fontsize=FONT_SIZE)
    ax.set_ylabel("‖∂ term / ∂ student logits‖ per example (log scale)", fontsize=FONT_SIZE - 1)
    ax.set_title("Without T², the teacher's voice fades as 1/T²", fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=FONT_SIZE - 2)
    return ax


def plot_logit_matching_limit(ax: Axes, student_logits, teacher_logits, temperatures: Sequence[float] | None = None) -> Axes:
    """Log-log plot of the distance between the KD gradient and plain logit matching, shrinking as T grows."""
    temperatures = np.geomspace(1, 1000, 40) if temperatures is None else temperatures
    gap = logit_matching_gap(student_logits, teacher_logits, temperatures)
    ax.plot(gap["temperature"], 100 * gap["relative_error"], color=OKABE_ITO["purple"], linewidth=2.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("temperature T (log scale)", fontsize=FONT_SIZE)
    ax.set_ylabel("relative gap to logit matching [%]", fontsize=FONT_SIZE)
    ax.set_title("At high T, distillation becomes logit matching", fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3, which="both")
    return ax


def plot_two_targets(
    student_logits, teacher_logits, gold: int, label_names: Sequence[str], temperature: float = 4.0,
    top_k: int = 6, figure: Figure | None = None,
) -> Figure:
    """The picture of the loss for one query: the hard term compares with a one-hot, the soft term with the teacher."""
    student = np.asarray(student_logits, dtype=np.float64).ravel()
    teacher = np.asarray(teacher_logits, dtype=np.float64).ravel()
    if student.shape != teacher.shape or len(label_names) != student.size:
        raise ValueError(f"student_logits ({student.size}), teacher_logits ({teacher.size}) and label_names "
                         f"({len(label_names)}) must have the same number of classes")
    if not 0 <= gold < student.size:
        raise ValueError(f"gold must be a class index in [0, {student.size}), got {gold}")
    _check_temperature(temperature)
    p_teacher = softmax(teacher, temperature)
    classes = [int(i) for i in np.argsort(-p_teacher, kind="stable")[:top_k]]
    if gold not in classes:
        classes = classes[:-1] + [gold]
    figure = figure or Figure(figsize=(13, 0.55 * top_k + 2.2), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    rows = np.arange(len(classes))[::-1]
    height = 0.38
    one_hot = np.eye(student.size)[gold]
    panels = (
        (left, softmax(student, 1.0), one_hot, "one-hot label", OKABE_ITO["black"], "T = 1",
         "Hard-label term: CE(student at T = 1, label)"),
        (right, softmax(student, temperature), p_teacher, "teacher", KD_COLOR, f"T = {temperature:g}",
         f"Soft term: KL(teacher ‖ student), both at T = {temperature:g}"),
    )
    for ax, p_student, target, target_name, target_color, t_text, title in panels:
        ax.barh(rows + height / 2, target[classes], height, color=target_color, label=f"{target_name} ({t_text})")
        ax.barh(rows - height / 2, p_student[classes], height, color=CE_COLOR, label=f"student ({t_text})")
        ax.set_xlim(0, 1.05)
        ax.set_xlabel("probability", fontsize=FONT_SIZE)
        ax.set_title(title, fontsize=FONT_SIZE)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=FONT_SIZE - 2, loc="lower right")
    left.set_yticks(rows, [f"★ {label_names[c]}" if c == gold else label_names[c] for c in classes], fontsize=FONT_SIZE - 1)
    figure.suptitle("Two targets for one query: the label says only which intent; the teacher also says which look alike",
                    fontsize=FONT_SIZE + 1)
    return figure


def plot_loss_parts(ax: Axes, ce: float, kd: float, lam: float) -> Axes:
    """Bars for the two terms and the λ-weighted total, whose stack shows each term's share."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam!r}")
    names = ["CE\n(hard labels)", "T²·KL\n(soft targets)", "total\nλ·CE + (1−λ)·T²·KL"]
    ax.bar(0, ce, color=CE_COLOR)
    ax.bar(1, kd, color=KD_COLOR)
    ax.bar(2, lam * ce, color=CE_COLOR, label=f"λ·CE = {lam:.2f} × {ce:.2f}")
    ax.bar(2, (1 - lam) * kd, bottom=lam * ce, color=KD_COLOR, label=f"(1−λ)·T²·KL = {1 - lam:.2f} × {kd:.2f}")
    for x, value in ((0, ce), (1, kd), (2, lam * ce + (1 - lam) * kd)):
        ax.text(x, value, f"{value:.3f}", ha="center", va="bottom", fontsize=FONT_SIZE - 1)
    ax.set_xticks(range(3), names, fontsize=FONT_SIZE - 2)
    ax.set_ylim(0, 1.55 * max(ce, kd, 1e-3))  # headroom so the legend never covers a bar
    ax.set_ylabel("loss [nats, mean over the batch]", fontsize=FONT_SIZE - 1)
    ax.set_title("The two terms and their λ-weighted sum", fontsize=FONT_SIZE + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper left")
    return ax


def plot_logit_gradients(
    ax: Axes, grad_ce, grad_kd, label_names: Sequence[str], classes: Sequence[int], gold: int | None = None,
) -> Axes:
    """Per intent, the gradient each weighted term sends to one example's logit (negative: descent raises it)."""
    grad_ce = np.asarray(grad_ce, dtype=np.float64).ravel()
    grad_kd = np.asarray(grad_kd, dtype=np.float64).ravel()
    if grad_ce.shape != grad_kd.shape or grad_ce.size != len(label_names):
        raise ValueError(f"grad_ce ({grad_ce.size}), grad_kd ({grad_kd.size}) and label_names ({len(label_names)}) "
                         "must have one entry per class")
    classes = [int(c) for c in classes]
    if not classes or min(classes) < 0 or max(classes) >= grad_ce.size:
        raise ValueError(f"classes must be non-empty class indices in [0, {grad_ce.size}), got {classes}")
    rows = np.arange(len(classes))[::-1]
    height = 0.38
    ax.barh(rows + height / 2, grad_ce[classes], height, color=CE_COLOR, label="from λ·CE")
    ax.barh(rows - height / 2, grad_kd[classes], height, color=KD_COLOR, label="from (1−λ)·T²·KL")
    ax.scatter(grad_ce[classes] + grad_kd[classes], rows, color=OKABE_ITO["black"], zorder=3, label="sum (what training uses)")
    ax.axvline(0, color=OKABE_ITO["black"], linewidth=0.8)
    ax.set_yticks(rows, [f"★ {label_names[c]}" if c == gold else label_names[c] for c in classes], fontsize=FONT_SIZE - 1)
    ax.set_xlabel("∂loss/∂logit for this query (negative: training raises the logit)", fontsize=FONT_SIZE - 1)
    ax.set_title("Where each term pushes this query's logits", fontsize=FONT_SIZE + 1)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


CURVE_COLUMNS = ("epoch", "loss", "ce", "kd", "dev_accuracy")


def curve_series(history) -> dict[str, list[float]]:
    """The columns a learning curve needs, from a kdlab History, its list of epoch dicts, or a dict of lists."""
    if hasattr(history, "column"):
        return {name: list(history.column(name)) for name in CURVE_COLUMNS}
    if isinstance(history, list) and all(isinstance(row, dict) for row in history):
        return {name: [row[name] for row in history] for name in CURVE_COLUMNS}
    if isinstance(history, dict) and all(name in history for name in CURVE_COLUMNS):
        return {name: list(history[name]) for name in CURVE_COLUMNS}
    raise ValueError(f"history must be a kdlab History, a list of epoch dicts or a dict with keys {CURVE_COLUMNS}, "
                     f"got {type(history).__name__}")


def plot_learning_curves(
    histories, figure: Figure | None = None, epochs: int | None = None, teacher_accuracy: float | None = None,
) -> Figure:
    """Hard-label CE, the KD term and dev accuracy per epoch for several runs, side by side."""
    if not histories:
        raise ValueError("histories must map at least one run name to its History")
    series = {name: curve_series(history) for name, history in histories.items()}
    figure = figure or Figure(figsize=(15, 4.4), layout="constrained")
    axes = figure.subplots(1, 3)
    panels = (
        ("ce", "hard-label CE on train [nats]", "Hard-label term (CE)"),
        ("kd", "T²·KL to the teacher on train [nats]", "Soft term (distance from the teacher)"),
        ("dev_accuracy", "dev accuracy [%]", "Dev accuracy after each epoch"),
    )
    for ax, (column, ylabel, title) in zip(axes, panels):
        for n, (name, values) in enumerate(series.items()):
            y = np.asarray(values[column], dtype=np.float64) * (100 if column == "dev_accuracy" else 1)
            ax.plot(values["epoch"], y, marker="o", color=MODEL_COLORS[n % len(MODEL_COLORS)], linewidth=2, label=name)
        ax.set_xlabel("epoch", fontsize=FONT_SIZE)
        ax.set_ylabel(ylabel, fontsize=FONT_SIZE - 1)
        ax.set_title(title, fontsize=FONT_SIZE + 1)
        ax.grid(alpha=0.3)
        if epochs is not None:
            ax.set_xlim(0.5, epochs + 0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if teacher_accuracy is not None:
        axes[2].axhline(100 * teacher_accuracy, color=OKABE_ITO["black"], linestyle="--", linewidth=1.5,
                        label=f"teacher ({100 * teacher_accuracy:.1f}%)")
    axes[2].legend(fontsize=FONT_SIZE - 2, loc="lower right")
    return figure


def per_class_accuracy(predictions, labels, num_classes: int) -> np.ndarray:
    """Accuracy of each class on its own gold examples (NaN where a class has none)."""
    counts = confusion_counts(predictions, labels, num_classes)
    support = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(counts) / np.maximum(support, 1), np.nan)


def plot_per_class_change(
    ax: Axes, before, after, label_names: Sequence[str], count: int = 12,
    before_name: str = "CE only", after_name: str = "KD",
) -> Axes:
    """Diverging bars: the intents whose accuracy changed most between two models, gains and losses, by name."""
    before = np.asarray(before, dtype=np.float64).ravel()
    after = np.asarray(after, dtype=np.float64).ravel()
    if before.shape != after.shape or before.size != len(label_names):
        raise ValueError(f"before ({before.size}), after ({after.size}) and label_names ({len(label_names)}) "
                         "must have one entry per class")
    if count < 2:
        raise ValueError(f"count must be ≥ 2, got {count}")
    change = 100 * np.nan_to_num(after - before)
    order = np.argsort(change, kind="stable")
    losses = [int(i) for i in order[: count // 2] if change[i] < 0]
    gains = [int(i) for i in order[::-1][: count - count // 2] if change[i] > 0]
    shown = gains + losses[::-1]  # biggest gain on top, biggest loss at the bottom
    rows = np.arange(len(shown))[::-1]
    colors = [OKABE_ITO["blue"] if change[i] > 0 else OKABE_ITO["vermillion"] for i in shown]
    bars = ax.barh(rows, change[shown], color=colors)
    ax.bar_label(bars, labels=[f"{change[i]:+.1f}" for i in shown], padding=3, fontsize=FONT_SIZE - 2)
    ax.set_yticks(rows, [label_names[i] for i in shown], fontsize=FONT_SIZE - 1)
    ax.axvline(0, color=OKABE_ITO["black"], linewidth=0.8)
    limit = max(np.abs(change[shown]).max() if shown else 1.0, 1.0) * 1.3
    ax.set_xlim(-limit, limit)
    ax.set_xlabel(f"test accuracy change, {after_name} − {before_name} [percentage points]", fontsize=FONT_SIZE - 1)
    ax.set_title(f"Intents that changed most: {after_name} vs {before_name}", fontsize=FONT_SIZE + 1)
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_accuracy_vs_latency(ax: Axes, rows: Sequence[dict], title: str | None = None) -> Axes:
    """Accuracy against batch-1 latency (log axis), one labelled point per model, the Pareto front as a line.

    `rows` are kdlab.deployment.deployment_row dicts (keys model, latency_median_ms, accuracy, size_mb).
    Models of one family share a colour; int8 versions are drawn hollow; marker area grows with size on disk.
    """
    from .deployment import pareto_front

    if not rows:
        raise ValueError("rows must contain at least one deployment row")
    missing = [key for key in ("model", "latency_median_ms", "accuracy", "size_mb") if key not in rows[0]]
    if missing:
        raise ValueError(f"rows must be kdlab.deployment.deployment_row dicts; missing keys {missing}")
    names = [r["model"] for r in rows]
    latency = np.array([r["latency_median_ms"] for r in rows], dtype=np.float64)
    accuracy = 100 * np.array([r["accuracy"] for r in rows], dtype=np.float64)
    if (latency <= 0).any():
        raise ValueError("latency_median_ms must be > 0 for a log axis")
    families = list(dict.fromkeys(name.replace("int8", "").split()[0] for name in names))
    palette = [OKABE_ITO[c] for c in ("blue", "green", "purple", "orange", "vermillion", "sky")]
    for name, x, y, r in zip(names, latency, accuracy, rows):
        color = palette[families.index(name.replace("int8", "").split()[0]) % len(palette)]
        int8 = "int8" in name
        area = 40 + 3 * r["size_mb"]  # marker area grows with MB; the floor keeps tiny models visible
        ax.scatter(x, y, s=area, marker="s" if int8 else "o", facecolor="white" if int8 else color,
                   edgecolor=color, linewidth=2.2, zorder=3)
        ax.annotate(f"{name}\n{r['size_mb']:.1f} MB", (x, y), xytext=(8, -4 if int8 else 6), textcoords="offset points",
                    fontsize=FONT_SIZE - 3, va="top" if int8 else "bottom")
    front = pareto_front(list(latency), list(accuracy))
    ax.step(latency[front], accuracy[front], where="post", color=OKABE_ITO["black"], linestyle="--", linewidth=1.3,
            zorder=2, label="Pareto front: nothing is both faster and more accurate")
    ax.scatter([], [], marker="o", color=OKABE_ITO["grey"], label="float32 (filled)")
    ax.scatter([], [], marker="s", facecolor="white", edgecolor=OKABE_ITO["grey"], linewidth=2, label="int8 (hollow)")
    ax.set_xscale("log")
    ax.set_xlim(latency.min() / 1.6, latency.max() * 4)  # room on the right for the labels
    ax.set_ylim(accuracy.min() - 3, accuracy.max() + 4)  # headroom for the top labels
    ax.set_xlabel("latency per query, batch 1, median [ms] (log scale)", fontsize=FONT_SIZE)
    ax.set_ylabel("test accuracy [%]", fontsize=FONT_SIZE)
    ax.set_title(title or "Accuracy vs speed: which models are worth deploying", fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)  # below: never on a point
    return ax


# --- validation and tuning: T × λ sweeps, label budgets, student sizes, overfitting remedies (notebook 05) ---

# One colour per student family in the capacity plots (Okabe-Ito, as everywhere).
FAMILY_COLORS = {"bag": OKABE_ITO["blue"], "tiny-bert": OKABE_ITO["green"], "truncated": OKABE_ITO["purple"]}


def _tuning_frame(rows, columns: Sequence[str], name: str = "rows"):
    """Rows (a DataFrame or a list of dicts, e.g. a benchmark JSON's 'rows') as a DataFrame with the needed columns."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValueError(f"{name} must contain at least one row")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing the columns {missing}; it has {list(frame.columns)}")
    return frame


def plot_sweep_heatmap(ax: Axes, rows, title: str | None = None, colorbar: bool = True) -> Axes:
    """Mean dev accuracy for every (T, λ) as a heat map; each cell says 'mean ± std over seeds'; the best cell is outlined.

    `rows` are kdlab.tuning.sweep_temperature_lambda rows (temperature, lam, seed, dev_accuracy). The outlined cell
    is kdlab.tuning.best_setting's choice, so the picture and the chosen setting always agree.
    """
    from matplotlib.patches import Rectangle

    from .tuning import best_setting, summarize

    frame = _tuning_frame(rows, ("temperature", "lam", "seed", "dev_accuracy"))
    summary = summarize(frame, ["temperature", "lam"])
    temperatures, lams = sorted(summary["temperature"].unique()), sorted(summary["lam"].unique())
    mean = 100 * summary.pivot(index="temperature", columns="lam", values="mean").reindex(index=temperatures, columns=lams)
    std = 100 * summary.pivot(index="temperature", columns="lam", values="std").reindex(index=temperatures, columns=lams)
    image = ax.imshow(mean.to_numpy(), cmap="cividis", origin="lower", aspect="auto")
    low, high = np.nanmin(mean.to_numpy()), np.nanmax(mean.to_numpy())
    seeds = int(frame["seed"].nunique())
    for i in range(len(temperatures)):
        for j in range(len(lams)):
            value = mean.iat[i, j]
            if np.isnan(value):
                continue
            # dark text on the light (yellow) end of cividis, white on the dark (blue) end
            light = high > low and (value - low) / (high - low) > 0.55
            text = f"{value:.1f}" + (f"\n± {std.iat[i, j]:.1f}" if seeds > 1 else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=FONT_SIZE - 1,
                    color=OKABE_ITO["black"] if light else "white")
    best = best_setting(frame)
    ax.add_patch(Rectangle((lams.index(best["lam"]) - 0.5, temperatures.index(best["temperature"]) - 0.5), 1, 1,
                           fill=False, edgecolor=OKABE_ITO["vermillion"], linewidth=3.5, label="best mean on dev"))
    ax.set_xticks(range(len(lams)), [f"{lam:g}" for lam in lams], fontsize=FONT_SIZE)
    ax.set_yticks(range(len(temperatures)), [f"{t:g}" for t in temperatures], fontsize=FONT_SIZE)
    ax.set_xlabel("λ = weight on the hard-label CE term (1 − λ on the soft term)", fontsize=FONT_SIZE)
    ax.set_ylabel("temperature T", fontsize=FONT_SIZE)
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed"
    ax.set_title(title or f"Dev accuracy [%] for each T × λ ({spread})", fontsize=FONT_SIZE + 1)
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, shrink=0.9)
        bar.set_label("mean dev accuracy [%]", fontsize=FONT_SIZE)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), fontsize=FONT_SIZE - 2, frameon=False)
    return ax


def _budget_summary(frame):
    """Mean and std (0 for one seed) of dev accuracy per (labels_per_class, labelled, method), fewest labels first."""
    summary = (frame.groupby(["labels_per_class", "labelled", "method"], sort=False)["dev_accuracy"]
               .agg(["mean", "std"]).reset_index())
    summary["std"] = summary["std"].fillna(0.0)
    summary["labelled"] = summary["labelled"].astype(int)  # grouping next to the mixed K column ('all') leaves objects
    return summary.sort_values(["labelled", "method"], kind="stable").reset_index(drop=True)


def plot_label_budget(ax: Axes, rows, live_rows=None, teacher_accuracy: float | None = None,
                      title: str | None = None, live_name: str = "this notebook") -> Axes:
    """Dev accuracy against the number of labelled training queries (log axis), CE only vs KD, gap written above.

    `rows` are kdlab.tuning.low_label_curve rows (labels_per_class, labelled, method, seed, dev_accuracy); error bars
    are the std over seeds. `live_rows` (same columns, e.g. this notebook's own small run) are drawn as hollow markers
    labelled `live_name`.
    """
    frame = _tuning_frame(rows, ("labels_per_class", "labelled", "method", "seed", "dev_accuracy"))
    summary = _budget_summary(frame)
    colors = {"CE only": CE_COLOR, "KD": KD_COLOR}
    seeds = int(frame["seed"].nunique())
    for method, part in summary.groupby("method", sort=False):
        ax.errorbar(part["labelled"], 100 * part["mean"], yerr=100 * part["std"], color=colors.get(method, OKABE_ITO["grey"]),
                    marker="o", markersize=8, linewidth=2.5, capsize=4,
                    label=f"{method} (benchmark, {'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else '1 seed'})")
    wide = summary.pivot(index="labelled", columns="method", values="mean")
    if {"CE only", "KD"} <= set(wide.columns):
        for labelled, row in wide.iterrows():
            # a dotted bracket from CE to KD, the gap written beside its middle
            ce, kd = 100 * row["CE only"], 100 * row["KD"]
            ax.plot([labelled, labelled], [ce, kd], color=OKABE_ITO["grey"], linestyle=":", linewidth=1.5, zorder=1)
            ax.annotate(f"{kd - ce:+.1f}", (labelled, (ce + kd) / 2), xytext=(9, 0), textcoords="offset points",
                        ha="left", va="center", fontsize=FONT_SIZE, fontweight="bold", color=OKABE_ITO["black"])
    if live_rows is not None:
        live = _budget_summary(_tuning_frame(live_rows, ("labels_per_class", "labelled", "method", "seed", "dev_accuracy"),
                                             "live_rows"))
        for method, part in live.groupby("method", sort=False):
            ax.scatter(part["labelled"], 100 * part["mean"], s=160, facecolor="white", linewidth=2.5, zorder=4,
                       edgecolor=colors.get(method, OKABE_ITO["grey"]), marker="D", label=f"{method} ({live_name})")
    if teacher_accuracy is not None:
        ax.axhline(100 * teacher_accuracy, color=OKABE_ITO["black"], linestyle="--", linewidth=1.5,
                   label=f"teacher ({100 * teacher_accuracy:.1f}%)")
    ticks = summary.drop_duplicates("labelled")
    ax.set_xscale("log")
    ax.set_xlim(ticks["labelled"].min() / 1.4, ticks["labelled"].max() * 1.6)  # room for the gap on the right
    ax.set_xticks(ticks["labelled"], [f"{k}/intent\n{n:,}" if k != "all" else f"all\n{n:,}"
                                      for k, n in zip(ticks["labels_per_class"], ticks["labelled"])], fontsize=FONT_SIZE - 1)
    ax.minorticks_off()
    low = 100 * (summary["mean"] - summary["std"]).min()
    ax.set_ylim(max(0.0, low - 8), 100)
    ax.set_xlabel("labelled training queries (log scale): K per intent, and in total", fontsize=FONT_SIZE)
    ax.set_ylabel("dev accuracy [%]", fontsize=FONT_SIZE)
    ax.set_title(title or "Few labels: CE only vs KD with the rest of train as unlabelled transfer set\n"
                          "(bold numbers: KD − CE in percentage points)", fontsize=FONT_SIZE + 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="lower right")
    return ax


def _short_student_name(name: str, kind: str) -> str:
    return name[len(kind):].strip() if name.startswith(kind) else name


def plot_capacity(rows, teacher: dict | None = None, figure: Figure | None = None, title: str | None = None) -> Figure:
    """Students of several sizes: dev accuracy against parameters (left) and against inference speed (right).

    `rows` are kdlab.tuning.capacity_curve rows (student, kind, params, method, seed, dev_accuracy, examples_per_s).
    One colour per family (kind); KD solid with filled markers, CE only dashed with hollow ones (markers only on the
    speed panel); each KD point is named. `teacher` = {"params": ..., "dev_accuracy": ...} adds the teacher as a star and a dashed line.
    """
    frame = _tuning_frame(rows, ("student", "kind", "params", "method", "seed", "dev_accuracy", "examples_per_s"))
    summary = (frame.groupby(["kind", "student", "method"], sort=False)
               .agg(params=("params", "first"), accuracy=("dev_accuracy", "mean"), speed=("examples_per_s", "mean"))
               .reset_index())
    # speed belongs to the architecture, not the training: one number per student (mean of its runs)
    summary["speed"] = summary.groupby("student")["speed"].transform("mean")
    figure = figure or Figure(figsize=(16, 6.2), layout="constrained")
    by_params, by_speed = figure.subplots(1, 2, sharey=True)
    for kind, family in summary.groupby("kind", sort=False):
        color = FAMILY_COLORS.get(kind, OKABE_ITO["grey"])
        for method, part in family.groupby("method", sort=False):
            part = part.sort_values("params")
            kd = method == "KD"
            style = dict(color=color, marker="o", markersize=9, linewidth=2.5 if kd else 1.8,
                         linestyle="-" if kd else "--", markerfacecolor=color if kd else "white", markeredgewidth=2)
            by_params.plot(part["params"], 100 * part["accuracy"], label=f"{kind}, {method}", **style)
            # no lines on the speed panel: speed need not grow monotonically with size, and lines would zigzag
            by_speed.plot(part["speed"], 100 * part["accuracy"], **(style | {"linestyle": "none"}))
            if kd:
                for _, row in part.iterrows():
                    for ax, x in ((by_params, row["params"]), (by_speed, row["speed"])):
                        ax.annotate(_short_student_name(row["student"], kind), (x, 100 * row["accuracy"]),
                                    xytext=(6, 7), textcoords="offset points", fontsize=FONT_SIZE - 3, color=color)
    if teacher is not None:
        accuracy = 100 * teacher["dev_accuracy"]
        for ax in (by_params, by_speed):
            ax.axhline(accuracy, color=OKABE_ITO["black"], linestyle=":", linewidth=1.5)
        by_params.scatter([teacher["params"]], [accuracy], marker="*", s=350, color=OKABE_ITO["black"], zorder=4,
                          label=f"teacher ({teacher['params'] / 1e6:.1f}M params, {accuracy:.1f}%)")
    by_params.set_xscale("log")
    by_speed.set_xscale("log")
    by_params.set_xlabel("trainable parameters (log scale)", fontsize=FONT_SIZE)
    by_speed.set_xlabel("inference speed [queries/s], batch 32, 1 thread (log scale)", fontsize=FONT_SIZE)
    by_params.set_ylabel("dev accuracy [%]", fontsize=FONT_SIZE)
    by_params.set_title("Accuracy vs size", fontsize=FONT_SIZE + 1)
    by_speed.set_title("Accuracy vs speed (right = faster)", fontsize=FONT_SIZE + 1)
    for ax in (by_params, by_speed):
        ax.grid(alpha=0.3, which="both")
    figure.legend(*by_params.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=FONT_SIZE - 2)
    figure.suptitle(title or "Capacity gap: how much a bigger student buys, CE only (dashed) vs KD (solid)",
                    fontsize=FONT_SIZE + 2)
    return figure


REMEDY_COLUMNS = ("remedy", "method", "epoch", "train_accuracy", "dev_accuracy", "kept_epoch", "final_dev_accuracy")


def plot_remedy_curves(rows, figure: Figure | None = None, columns: int = 3, title: str | None = None) -> Figure:
    """One panel per overfitting remedy: train (dashed) and dev (solid) accuracy per epoch, CE only and KD.

    `rows` are kdlab.tuning.remedy_curves rows. Where early stopping kept an earlier epoch, a marker shows it. The gap
    between a method's dashed and solid line is its overfitting: the model learns train queries it cannot generalise.
    """
    import pandas as pd

    frame = _tuning_frame(rows, REMEDY_COLUMNS)
    remedies = list(dict.fromkeys(frame["remedy"]))
    colors = {"CE only": CE_COLOR, "KD": KD_COLOR}
    columns = max(1, min(columns, len(remedies)))
    lines = -(-len(remedies) // columns)
    figure = figure or Figure(figsize=(5.3 * columns, 3.9 * lines + 0.9), layout="constrained")
    axes = figure.subplots(lines, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, remedy in zip(axes, remedies):
        for method, part in frame[frame["remedy"] == remedy].groupby("method", sort=False):
            color = colors.get(method, OKABE_ITO["grey"])
            ax.plot(part["epoch"], 100 * part["train_accuracy"], color=color, linestyle="--", linewidth=2,
                    label=f"{method}: train")
            ax.plot(part["epoch"], 100 * part["dev_accuracy"], color=color, linestyle="-", linewidth=2.5,
                    label=f"{method}: dev")
            kept = part["kept_epoch"].iloc[-1]
            if pd.notna(kept):  # early stopping restored the weights of this epoch
                ax.plot([kept], [100 * part["final_dev_accuracy"].iloc[-1]], marker="*", markersize=16, color=color,
                        markeredgecolor=OKABE_ITO["black"], linestyle="none", label=f"{method}: epoch kept")
        ax.set_title(remedy, fontsize=FONT_SIZE + 1)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[len(remedies):]:
        ax.set_visible(False)
    for index, ax in enumerate(axes[: len(remedies)]):
        if index % columns == 0:
            ax.set_ylabel("accuracy [%]", fontsize=FONT_SIZE)
        if index >= len(remedies) - columns:
            ax.set_xlabel("epoch", fontsize=FONT_SIZE)
            ax.tick_params(labelbottom=True)
    handles = {}
    for ax in axes[: len(remedies)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(len(handles), 6),
                  fontsize=FONT_SIZE - 1)
    figure.suptitle(title or "Overfitting remedies, each alone: train (dashed) vs dev (solid) accuracy",
                    fontsize=FONT_SIZE + 2)
    return figure


def remedy_table(rows):
    """Per remedy and method: dev accuracy of the model you keep, best dev epoch, last train accuracy, train − dev gap (%)."""
    frame = _tuning_frame(rows, REMEDY_COLUMNS)
    table = frame.groupby(["remedy", "method"], sort=False).agg(
        kept_dev=("final_dev_accuracy", "last"), best_dev=("dev_accuracy", "max"), last_train=("train_accuracy", "last"),
        last_dev=("dev_accuracy", "last"), epochs_run=("epoch", "max"))
    percent = ["kept_dev", "best_dev", "last_train", "last_dev"]
    table[percent] = 100 * table[percent]
    table["gap"] = table["last_train"] - table["last_dev"]
    return table[[*percent, "gap", "epochs_run"]].rename(columns={"kept_dev": "dev of the kept model (%)", "best_dev": "best dev epoch (%)",
                                 "last_train": "train, last epoch (%)", "last_dev": "dev, last epoch (%)",
                                 "gap": "train − dev gap (points)", "epochs_run": "epochs run"})


def plot_remedy_summary(ax: Axes, rows, title: str | None = None) -> Axes:
    """Dot plot: for each remedy, dev accuracy of the kept model with CE only and with KD, joined by a line."""
    frame = _tuning_frame(rows, REMEDY_COLUMNS)
    final = frame.groupby(["remedy", "method"], sort=False)["final_dev_accuracy"].last().unstack("method")
    remedies = list(dict.fromkeys(frame["remedy"]))
    final = 100 * final.reindex(remedies)
    positions = np.arange(len(remedies))[::-1]  # first remedy on top
    colors = {"CE only": CE_COLOR, "KD": KD_COLOR}
    if {"CE only", "KD"} <= set(final.columns):
        ax.hlines(positions, final["CE only"], final["KD"], color=OKABE_ITO["grey"], linewidth=2, zorder=1)
    for method in final.columns:
        ax.scatter(final[method], positions, s=140, color=colors.get(method, OKABE_ITO["grey"]), zorder=3, label=method)
        for y, x in zip(positions, final[method]):
            ax.annotate(f"{x:.1f}", (x, y), xytext=(0, 10), textcoords="offset points", ha="center",
                        fontsize=FONT_SIZE - 1, color=OKABE_ITO["black"])
    ax.set_yticks(positions, remedies, fontsize=FONT_SIZE)
    ax.set_ylim(positions.min() - 0.6, positions.max() + 0.7)
    ax.margins(x=0.08)
    ax.set_xlabel("dev accuracy of the model you keep [%]", fontsize=FONT_SIZE)
    ax.set_title(title or "Which remedy helps, with and without KD", fontsize=FONT_SIZE + 1)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 1, loc="lower right")
    return ax


# --- beyond logits (notebook 07): an omitted intent, calibration, DistilBERT-style students ---

def _mean_std_by(rows: Sequence[dict], keys: Sequence[str], value: str) -> dict[tuple, tuple[float, float, int]]:
    """(mean, std over seeds — 0 for one —, count) of `value` for each combination of `keys`, in first-seen order."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(float(row[value]))
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) for key, v in groups.items()}


def _check_rows(rows: Sequence[dict], needed: Sequence[str], what: str) -> list[dict]:
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError(f"rows must contain at least one {what} row")
    missing = [k for k in needed if k not in rows[0]]
    if missing:
        raise ValueError(f"rows must be {what} rows with keys {list(needed)}; missing {missing}")
    return rows


def plot_soft_mass_on_class(
    ax: Axes, mass: np.ndarray, label_names: Sequence[str], class_index: int, temperature: float, top: int = 12,
    color: str = OKABE_ITO["blue"],
) -> Axes:
    """Bars: the probability one class receives from each *other* intent's training queries, summed — the hints left
    about an intent when all its own examples are gone. `mass[c]` is that sum over gold class c (c = class_index is skipped)."""
    mass = np.asarray(mass, dtype=np.float64).ravel()
    if mass.size != len(label_names):
        raise ValueError(f"mass has {mass.size} entries but label_names has {len(label_names)}; one per class")
    if not 0 <= class_index < mass.size:
        raise ValueError(f"class_index must be in [0, {mass.size}), got {class_index}")
    if top < 1:
        raise ValueError(f"top must be ≥ 1, got {top}")
    others = np.where(np.arange(mass.size) == class_index, -np.inf, np.nan_to_num(mass))
    shown = [int(i) for i in np.argsort(-others, kind="stable")[: min(top, mass.size - 1)]]
    rows = np.arange(len(shown))[::-1]  # largest on top
    bars = ax.barh(rows, mass[shown], color=color)
    ax.bar_label(bars, labels=[f"{mass[i]:.1f}" for i in shown], padding=3, fontsize=FONT_SIZE - 2)
    ax.set_yticks(rows, [label_names[i] for i in shown], fontsize=FONT_SIZE - 1)
    ax.set_xlim(0, mass[shown].max() * 1.15 if mass[shown].max() > 0 else 1.0)
    name = label_names[class_index]
    ax.set_xlabel(f"summed probability on {name} at T = {temperature:g} [examples' worth]", fontsize=FONT_SIZE - 1)
    total = float(np.nansum(np.delete(mass, class_index)))
    ax.set_title(f"Hints about {name} hidden in other intents' soft targets\n"
                 f"(top {len(shown)} intents; all {mass.size - 1} together: {total:.1f} examples' worth)", fontsize=FONT_SIZE + 1)
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_bias_shift_scan(
    scans: dict, class_name: str, chosen_shift: float | None = None, figure: Figure | None = None,
) -> Figure:
    """Two panels against the bias shift: the omitted class's recall and precision, and overall accuracy (all on dev).

    `scans` maps a model name to kdlab.omitted_class.bias_shift_scan's table (columns shift, accuracy,
    class_recall, class_precision); `chosen_shift` is drawn as a dashed vertical line.
    """
    if not scans:
        raise ValueError("scans must map at least one model name to its bias-shift scan")
    needed = ("shift", "accuracy", "class_recall", "class_precision")
    for name, scan in scans.items():
        missing = [c for c in needed if c not in scan]
        if missing:
            raise ValueError(f"scan of {name!r} lacks columns {missing}; make it with kdlab.omitted_class.bias_shift_scan")
    figure = figure or Figure(figsize=(14, 4.8), layout="constrained")
    left, right = figure.subplots(1, 2, sharex=True)
    for n, (name, scan) in enumerate(scans.items()):
        color = MODEL_COLORS[n % len(MODEL_COLORS)]
        shift = np.asarray(scan["shift"], dtype=np.float64)
        left.plot(shift, 100 * np.asarray(scan["class_recall"]), color=color, linewidth=2.5, marker="o", markersize=4,
                  label=f"{name}: recall")
        left.plot(shift, 100 * np.asarray(scan["class_precision"]), color=color, linewidth=2, linestyle="--",
                  label=f"{name}: precision")
        right.plot(shift, 100 * np.asarray(scan["accuracy"]), color=color, linewidth=2.5, marker="o", markersize=4, label=name)
    for ax in (left, right):
        if chosen_shift is not None:
            ax.axvline(chosen_shift, color=OKABE_ITO["black"], linestyle=":", linewidth=1.6,
                       label=f"shift chosen on dev: +{chosen_shift:g}")
        ax.set_xlabel(f"bias added to the {class_name} logit [logit units]", fontsize=FONT_SIZE)
        ax.grid(alpha=0.3)
    left.set_ylim(-3, 105)
    left.set_ylabel(f"{class_name} on dev [%]", fontsize=FONT_SIZE)
    left.set_title(f"Recall and precision of the omitted intent", fontsize=FONT_SIZE + 1)
    right.set_ylabel("dev accuracy, all intents [%]", fontsize=FONT_SIZE)
    right.set_title("Overall accuracy: what the dev set chooses by", fontsize=FONT_SIZE + 1)
    for ax in (left, right):  # below the panels: the curves fill the whole plotting area
        ax.legend(fontsize=FONT_SIZE - 2, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    return figure


OMITTED_CLASS_BARS = (("CE only", "recall_as_trained", "CE only"), ("KD", "recall_as_trained", "KD as trained"),
                      ("KD", "recall_after_shift", "KD after bias shift"))


def plot_omitted_class_recall(ax: Axes, rows: Sequence[dict], title: str | None = None) -> Axes:
    """Grouped bars per omitted intent: recall on dev of the CE-only student, the KD student, and the KD student after
    its dev-chosen bias shift (mean over seeds; error bars = std over seeds). Rows as benchmarks/kd_quality.py saves them."""
    rows = _check_rows(rows, ("class", "method", "recall_as_trained", "recall_after_shift"), "omit-class")
    classes = list(dict.fromkeys(r["class"] for r in rows))
    colors = [OKABE_ITO[c] for c in ("grey", "sky", "blue")]
    width = 0.8 / len(OMITTED_CLASS_BARS)
    seeds = 1
    for b, (method, column, label) in enumerate(OMITTED_CLASS_BARS):
        stats = _mean_std_by([r for r in rows if r["method"] == method], ["class"], column)
        means = np.array([100 * stats[(c,)][0] if (c,) in stats else np.nan for c in classes])
        stds = np.array([100 * stats[(c,)][1] if (c,) in stats else 0.0 for c in classes])
        seeds = max([seeds] + [stats[(c,)][2] for c in classes if (c,) in stats])
        x = np.arange(len(classes)) + (b - (len(OMITTED_CLASS_BARS) - 1) / 2) * width
        bars = ax.bar(x, np.nan_to_num(means), width, color=colors[b], label=label,
                      yerr=stds if stds.any() else None, capsize=4, error_kw={"elinewidth": 1.2})
        ax.bar_label(bars, labels=[f"{m:.0f}" for m in means], padding=5, fontsize=FONT_SIZE - 2)
    ax.set_xticks(range(len(classes)), classes, fontsize=FONT_SIZE - 1)
    ax.set_ylim(0, 125)  # headroom: labels above 100 % error bars stay clear of the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_xlabel("intent left out of the training set", fontsize=FONT_SIZE)
    ax.set_ylabel("recall of that intent on dev [%]", fontsize=FONT_SIZE)
    spread = f"mean of {seeds} seeds, bars ± std" if seeds > 1 else "1 seed"
    ax.set_title(title or f"Recognising an intent never seen in training ({spread})", fontsize=FONT_SIZE + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper left", ncol=len(OMITTED_CLASS_BARS))
    return ax


def plot_reliability_diagram(ax: Axes, bins, name: str, color: str = OKABE_ITO["blue"], min_count: int = 10) -> Axes:
    """Accuracy per confidence bin as bars against the diagonal of perfect calibration; the gap to each bin's mean
    confidence hatched. Bins with fewer than `min_count` predictions are drawn pale: their accuracy is mostly noise.
    `bins` is kdlab.calibration.reliability_bins(...) (edges, confidence, accuracy, count)."""
    edges = np.asarray(bins.edges, dtype=np.float64)
    accuracy = np.asarray(bins.accuracy, dtype=np.float64)
    confidence = np.asarray(bins.confidence, dtype=np.float64)
    count = np.asarray(bins.count, dtype=np.float64)
    if not (len(edges) - 1 == len(accuracy) == len(confidence) == len(count)):
        raise ValueError("bins must have one more edge than it has accuracy, confidence and count entries")
    filled = count > 0
    left, width = 100 * edges[:-1][filled], 100 * np.diff(edges)[filled]
    acc, conf = 100 * accuracy[filled], 100 * confidence[filled]
    few = count[filled] < min_count
    ax.bar(left[~few], acc[~few], width[~few], align="edge", color=color, edgecolor="white", label="accuracy in the bin")
    if few.any():
        ax.bar(left[few], acc[few], width[few], align="edge", color=color, alpha=0.3, edgecolor="white",
               label=f"… in a bin of < {min_count} queries (noisy)")
    ax.bar(left, conf - acc, width, bottom=acc, align="edge", color="none", edgecolor=OKABE_ITO["vermillion"],
           hatch="//", linewidth=1.0, label="gap to its mean confidence")
    ax.plot([0, 100], [0, 100], color=OKABE_ITO["black"], linestyle="--", linewidth=1.3, label="perfect calibration")
    ece = float((np.abs(accuracy[filled] - confidence[filled]) * count[filled]).sum() / count.sum())
    top = count[-1] / count.sum()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (top-1 probability) [%]", fontsize=FONT_SIZE)
    ax.set_ylabel("accuracy [%]", fontsize=FONT_SIZE)
    ax.set_title(f"{name}\nECE {100 * ece:.1f} %, {top:.0%} of queries in the top bin", fontsize=FONT_SIZE)
    ax.grid(alpha=0.3)
    return ax


def plot_reliability_diagrams(bins_by_model: dict, figure: Figure | None = None) -> Figure:
    """One reliability diagram per model, side by side, one legend for all."""
    if not bins_by_model:
        raise ValueError("bins_by_model must map at least one model name to its reliability bins")
    figure = figure or Figure(figsize=(4.6 * len(bins_by_model), 5.4), layout="constrained")
    axes = figure.subplots(1, len(bins_by_model), squeeze=False)[0]
    for n, (ax, (name, bins)) in enumerate(zip(axes, bins_by_model.items())):
        plot_reliability_diagram(ax, bins, name)
        if n:
            ax.set_ylabel("")
    legend = {}  # one entry per label, whichever panel drew it
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=4, fontsize=FONT_SIZE - 1)
    figure.suptitle("Reliability on dev: when the model says p %, is it right p % of the time?", fontsize=FONT_SIZE + 2)
    return figure


CALIBRATION_PANELS = (
    ("ece", "expected calibration error [%]", "Calibration error (lower is better)"),
    ("overconfidence", "mean confidence − accuracy [points]", "Over- (> 0) or under-confident (< 0)"),
    ("agreement_with_teacher", "top-1 agreement with the teacher [%]", "Same top intent as the teacher"),
)


def plot_calibration_vs_temperature(rows: Sequence[dict], figure: Figure | None = None, title: str | None = None) -> Figure:
    """ECE, over-confidence and agreement with the teacher on dev against the distillation temperature T of KD
    students (mean ± std over seeds), with the teacher and the CE-only student as horizontal lines.

    Rows as kdlab.tuning.calibration_by_temperature returns them (model, temperature, dev_accuracy, ece,
    mean_confidence, agreement_with_teacher; the temperature of the teacher and CE-only rows is ignored)."""
    rows = _check_rows(rows, ("model", "temperature", "dev_accuracy", "ece", "mean_confidence", "agreement_with_teacher"),
                       "calibration")
    for r in rows:
        r["overconfidence"] = r["mean_confidence"] - r["dev_accuracy"]
    kd = [r for r in rows if r["model"] == "KD"]
    if not kd:
        raise ValueError("rows hold no KD student: nothing to draw against the temperature")
    figure = figure or Figure(figsize=(15, 4.6), layout="constrained")
    axes = figure.subplots(1, len(CALIBRATION_PANELS))
    references = {"teacher": (OKABE_ITO["black"], ":"), "CE only": (OKABE_ITO["vermillion"], "--")}
    for ax, (column, ylabel, panel_title) in zip(axes, CALIBRATION_PANELS):
        stats = _mean_std_by(kd, ["temperature"], column)
        keys = sorted(stats, key=lambda key: float(key[0]))
        temperatures = np.array([float(key[0]) for key in keys])
        mean = np.array([100 * stats[key][0] for key in keys])
        std = np.array([100 * stats[key][1] for key in keys])
        ax.errorbar(temperatures, mean, yerr=std, color=OKABE_ITO["blue"], marker="o", linewidth=2.5,
                    capsize=4, label="KD student trained at temperature T (mean ± std over seeds)")
        for model, (color, style) in references.items():
            if column == "agreement_with_teacher" and model == "teacher":
                continue  # always 100 %: it is the reference
            values = [r[column] for r in rows if r["model"] == model]
            if values:
                ax.axhline(100 * float(np.mean(values)), color=color, linestyle=style, linewidth=2,
                           label="CE-only student" if model == "CE only" else model)
        if column == "overconfidence":
            ax.axhline(0, color=OKABE_ITO["grey"], linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
        ax.set_xlabel("distillation temperature T (log scale)", fontsize=FONT_SIZE)
        ax.set_ylabel(ylabel, fontsize=FONT_SIZE - 1)
        ax.set_title(panel_title, fontsize=FONT_SIZE + 1)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # the first panel draws all three
    figure.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=FONT_SIZE - 1)
    seeds = max(stats[key][2] for key in stats)
    figure.suptitle(title or f"How the temperature of training shapes calibration (dev, {seeds} seed(s))",
                    fontsize=FONT_SIZE + 2)
    return figure


DISTILBERT_STARTS = ("teacher layers", "random init")
DISTILBERT_LOSSES = ("logits only", "logits + cosine")


def plot_distilbert_comparison(ax: Axes, rows: Sequence[dict], title: str | None = None,
                               teacher_accuracy: float | None = None) -> Axes:
    """Grouped bars: dev accuracy of encoder students by how they start (teacher layers vs random init) and what
    they learn from (logits only vs logits + cosine hidden-state loss); mean over seeds, error bars = std.
    Rows as kdlab.tuning.distilbert_comparison returns them (start, loss, dev_accuracy)."""
    rows = _check_rows(rows, ("start", "loss", "dev_accuracy"), "DistilBERT comparison")
    starts = [s for s in DISTILBERT_STARTS if any(r["start"] == s for r in rows)]
    losses = [l for l in DISTILBERT_LOSSES if any(r["loss"] == l for r in rows)]
    stats = _mean_std_by(rows, ["start", "loss"], "dev_accuracy")
    colors = [OKABE_ITO["sky"], OKABE_ITO["blue"]]
    width = 0.8 / max(len(losses), 1)
    for b, loss in enumerate(losses):
        means = np.array([100 * stats[(s, loss)][0] if (s, loss) in stats else np.nan for s in starts])
        stds = np.array([100 * stats[(s, loss)][1] if (s, loss) in stats else 0.0 for s in starts])
        x = np.arange(len(starts)) + (b - (len(losses) - 1) / 2) * width
        bars = ax.bar(x, np.nan_to_num(means), width, color=colors[b % 2], label=f"trained on {loss}",
                      yerr=stds if stds.any() else None, capsize=4)
        ax.bar_label(bars, labels=[f"{m:.1f}" for m in means], padding=5, fontsize=FONT_SIZE - 1)
    if teacher_accuracy is not None:
        ax.axhline(100 * teacher_accuracy, color=OKABE_ITO["black"], linestyle="--", linewidth=1.5,
                   label=f"teacher ({100 * teacher_accuracy:.1f})")
    ax.set_xticks(range(len(starts)), [f"start: {s}" for s in starts], fontsize=FONT_SIZE)
    ax.set_ylim(0, 105)
    ax.set_ylabel("dev accuracy [%]", fontsize=FONT_SIZE)
    seeds = max(n for _, _, n in stats.values())
    ax.set_title(title or f"DistilBERT's two ideas, one at a time ({seeds} seed(s))", fontsize=FONT_SIZE + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper right")
    return ax
