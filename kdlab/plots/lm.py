"""Notebook 11's figures: forward vs reverse KL as a picture, next-token distributions, the arms of LM distillation.

One colour per student arm (ARM_COLORS), the teacher in black, in every figure of the lesson, so "orange = forward
KL" holds from the 1-D picture to the results grid.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..language import tr
from .style import FONT_SIZE, OKABE_ITO, _draws_on_axes, _new_axes_grid

# One colour per arm of the language-model lesson (kdlab.lm_distill.ARMS), Okabe-Ito, the teacher black.
ARM_COLORS = {
    "teacher": OKABE_ITO["black"], "ce": OKABE_ITO["blue"], "forward_kl": OKABE_ITO["orange"],
    "reverse_kl": OKABE_ITO["purple"], "sequence_kd": OKABE_ITO["green"], "on_policy": OKABE_ITO["vermillion"],
}
ARM_LABELS = {
    "teacher": "teacher", "ce": "CE on the text", "forward_kl": "token-level forward KL",
    "reverse_kl": "token-level reverse KL", "sequence_kd": "sequence-level KD", "on_policy": "on-policy (GKD)",
}
ARM_TICKS = {  # short two-line names for an axis of arms
    "teacher": "teacher", "ce": "CE on\nthe text", "forward_kl": "forward\nKL", "reverse_kl": "reverse\nKL",
    "sequence_kd": "sequence-\nlevel KD", "on_policy": "on-policy\n(GKD)",
}
# The 1-D picture's fit at the slider's β: a colour no arm uses.
BETA_FIT_COLOR = OKABE_ITO["sky"]


def arm_color(arm: str) -> str:
    """The colour of an arm (or 'teacher') in every figure of notebook 11; an unknown arm gets grey.

    Introduced in notebook 11 (11-Distilling-Language-Models), used by `plot_lm_arms`.
    """
    return ARM_COLORS.get(arm, OKABE_ITO["grey"])


# --- forward vs reverse KL, as a picture ---

def plot_kl_fits(fits: Sequence, beta: float, grid: np.ndarray | None = None, target: np.ndarray | None = None,
                 *, axes=None, figure: Figure | None = None) -> Figure:
    """Three panels: p and the fitted Gaussians; where q sits (μ ± σ) for every β; the divergence left at the fit.

    `fits` are kdlab.kl_direction.fit_table's GaussianFits (one per β, rising, including β = 0 and β = 1); `beta`
    picks the one drawn as the slider's fit. `grid` and `target` (p on the grid) default to kdlab.kl_direction's.
    The grid points are a vocabulary, so densities are the grid probabilities divided by the spacing.

    Introduced in notebook 11 (11-Distilling-Language-Models), drawn by `KLDirectionExplorer`.
    """
    from .. import kl_direction
    from ..checks import check_beta

    beta = check_beta(beta)
    fits = list(fits)
    betas = np.array([fit.beta for fit in fits])
    if not fits or betas[0] != 0.0 or betas[-1] != 1.0:
        raise ValueError("fits must be kl_direction.fit_table's list, from β = 0 (forward KL) to β = 1 (reverse KL)")
    grid = kl_direction.GRID if grid is None else np.asarray(grid, dtype=np.float64)
    target = np.exp(kl_direction.target_log_probs(grid)) if target is None else np.asarray(target, dtype=np.float64)
    if target.shape != grid.shape or any(fit.q.shape != grid.shape for fit in fits):
        raise ValueError(f"target and every fit's q must have one value per grid point ({len(grid)})")
    current = fits[int(np.argmin(np.abs(betas - beta)))]
    spacing = float(np.mean(np.diff(grid)))
    figure, (left, middle, right) = _new_axes_grid(axes, figure, (1, 3), (17, 5.2), "plot_kl_fits",
                                                   width_ratios=(1.6, 1, 1))

    left.fill_between(grid, target / spacing, color=OKABE_ITO["grey"], alpha=0.45, label=tr("p: the teacher (two peaks)"))
    left.plot(grid, fits[0].q / spacing, color=ARM_COLORS["forward_kl"], linewidth=3,
              label=tr("q fitted by forward KL(p‖q), β = 0"))
    left.plot(grid, fits[-1].q / spacing, color=ARM_COLORS["reverse_kl"], linewidth=3, linestyle=(0, (6, 3)),
              label=tr("q fitted by reverse KL(q‖p), β = 1"))
    left.plot(grid, current.q / spacing, color=BETA_FIT_COLOR, linewidth=2.5, linestyle=(0, (1, 1.5)),
              label=tr("q fitted by generalised JSD, β = {beta:.2f}", beta=current.beta))
    left.set_title(tr("One Gaussian q fitted to a two-peaked p"), fontsize=FONT_SIZE + 2)
    left.set_xlabel(tr("x (arbitrary units; each grid point is one 'token')"), fontsize=FONT_SIZE)
    left.set_ylabel(tr("probability density"), fontsize=FONT_SIZE)
    left.set_ylim(0, 1.25 * max(float(target.max()), max(float(f.q.max()) for f in fits)) / spacing)
    left.legend(loc="upper right", fontsize=FONT_SIZE - 2, framealpha=0.9)

    mus, sigmas = np.array([fit.mu for fit in fits]), np.array([fit.sigma for fit in fits])
    middle.fill_between(betas, mus - sigmas, mus + sigmas, color=BETA_FIT_COLOR, alpha=0.3, step=None,
                        label=tr("μ ± σ of the best q"))
    middle.plot(betas, mus, color=OKABE_ITO["black"], marker="o", markersize=4, linewidth=1.5, label=tr("μ of the best q"))
    for n, (centre, _, _) in enumerate(kl_direction.PEAKS):
        middle.axhline(centre, color=OKABE_ITO["grey"], linestyle=(0, (4, 3)), linewidth=1.5,
                       label=tr("p's peaks") if n == 0 else None)
    middle.axvline(current.beta, color=BETA_FIT_COLOR, linewidth=2)
    middle.set_title(tr("Where the best q sits, for every β"), fontsize=FONT_SIZE + 2)
    middle.set_xlabel(tr("β (0 = forward KL, 1 = reverse KL)"), fontsize=FONT_SIZE)
    middle.set_ylabel(tr("x (arbitrary units)"), fontsize=FONT_SIZE)
    middle.set_ylim(float(grid[0]) * 0.75, float(grid[-1]) * 0.75)
    middle.legend(loc="upper right", fontsize=FONT_SIZE - 2, framealpha=0.9)

    divergences = np.array([fit.divergence for fit in fits])
    inside = (betas > 0) & (betas < 1)
    right.plot(betas[inside], divergences[inside], color=BETA_FIT_COLOR, marker="o", markersize=5, linewidth=2,
               label=tr("generalised JSD, 0 < β < 1"))
    right.plot([0.0], [divergences[0]], linestyle="none", marker="s", markersize=10, color=ARM_COLORS["forward_kl"],
               label=tr("forward KL (β = 0, defined separately)"))
    right.plot([1.0], [divergences[-1]], linestyle="none", marker="D", markersize=10, color=ARM_COLORS["reverse_kl"],
               label=tr("reverse KL (β = 1, defined separately)"))
    right.axvline(current.beta, color=BETA_FIT_COLOR, linewidth=2)
    right.set_ylim(0, 1.35 * float(divergences.max()))
    right.set_title(tr("The divergence left at the best q"), fontsize=FONT_SIZE + 2)
    right.set_xlabel(tr("β (0 = forward KL, 1 = reverse KL)"), fontsize=FONT_SIZE)
    right.set_ylabel(tr("divergence at the fit (nats)"), fontsize=FONT_SIZE)
    right.legend(loc="upper center", fontsize=FONT_SIZE - 2, framealpha=0.9)
    for ax in (left, middle, right):
        ax.tick_params(labelsize=FONT_SIZE - 1)
    return figure


# --- token-level targets: the teacher's next-token distribution at every position ---

def visible_token(text: str) -> str:
    """A token as a label a learner can read: a leading space shown as '␣', an empty or end token named.

    Introduced in notebook 11 (11-Distilling-Language-Models), used by `plot_position_targets`.
    """
    if text == "":
        return "(nothing)"
    if not text.isprintable() and not text.startswith(" "):
        return repr(text)  # a control byte (part of a character the BPE split) reads as '\x08', not as nothing
    return ("␣" + text[1:]) if text.startswith(" ") else text


@_draws_on_axes(figsize=(15, 4.5))
def plot_position_targets(probs, positions: Sequence[str], vocabulary: Sequence[str],
                          next_tokens: Sequence[str | None] | None = None, top: int = 4, title: str | None = None,
                          *, ax: Axes | None = None) -> Axes:
    """The teacher's next-token distribution after every position of one text, as a table of its top tokens.

    `probs` is (positions, vocabulary): row i is the distribution over the token that follows positions[i].
    Column i lists the `top` most likely next tokens, shaded by probability (0 to 1, cividis); the token that
    really comes next (`next_tokens[i]`) is outlined. Token-level distillation trains the student on every column.

    Introduced in notebook 11 (11-Distilling-Language-Models).
    """
    from matplotlib.patches import Rectangle

    probs = np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != len(positions) or probs.shape[1] != len(vocabulary):
        raise ValueError(f"probs must be (positions = {len(positions)}, vocabulary = {len(vocabulary)}), "
                         f"got shape {probs.shape}")
    if next_tokens is not None and len(next_tokens) != len(positions):
        raise ValueError(f"next_tokens must have one entry per position ({len(positions)}), got {len(next_tokens)}")
    if not isinstance(top, (int, np.integer)) or not 1 <= top <= probs.shape[1]:
        raise ValueError(f"top must be an integer in [1, {probs.shape[1]}], got {top!r}")
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]  # (positions, top)
    shown = np.take_along_axis(probs, order, axis=1).T  # rank × position
    ax.imshow(shown, cmap="cividis", vmin=0.0, vmax=1.0, aspect="auto")
    for column in range(len(positions)):
        for rank in range(top):
            token, value = vocabulary[order[column, rank]], shown[rank, column]
            ax.text(column, rank, f"{visible_token(token)}\n{value:.2f}", ha="center", va="center",
                    fontsize=FONT_SIZE - 2, color=OKABE_ITO["black"] if value > 0.55 else "white")
            if next_tokens is not None and next_tokens[column] == token:
                ax.add_patch(Rectangle((column - 0.5, rank - 0.5), 1, 1, fill=False, linewidth=3,
                                       edgecolor=OKABE_ITO["vermillion"]))
    ax.set_xticks(range(len(positions)), [visible_token(t) for t in positions], fontsize=FONT_SIZE - 1, rotation=30)
    ax.set_yticks(range(top), [f"#{r + 1}" for r in range(top)], fontsize=FONT_SIZE - 1)
    ax.set_xlabel(tr("the text so far, one token per column (its last token shown); outlined: the token that comes "
                     "next"),
                  fontsize=FONT_SIZE)
    ax.set_ylabel(tr("rank of the next token"), fontsize=FONT_SIZE)
    ax.set_title(tr(title) or tr("The teacher's next-token distribution at every position (shade = probability, 0 to 1)"),
                 fontsize=FONT_SIZE + 1)
    return ax


def plot_next_token_distributions(distributions: Mapping[str, "object"], prefix: str, temperature: float,
                                  *, axes=None, figure: Figure | None = None) -> Figure:
    """Side-by-side bars of each model's most likely next tokens after `prefix`, at temperature T.

    `distributions` maps a model name (an arm of kdlab.lm_distill.ARMS, or 'teacher') to a DataFrame with columns
    token and probability, most likely first (kdlab.lm_distill.next_token_distribution's output). Every panel uses
    one 0-to-1 axis, so a flatter distribution is visibly flatter.

    Introduced in notebook 11 (11-Distilling-Language-Models), drawn by `NextTokenExplorer`.
    """
    from ..checks import check_temperature

    temperature = check_temperature(temperature)
    if not distributions:
        raise ValueError("distributions must hold at least one model's next-token table, e.g. {'teacher': frame}")
    count = len(distributions)
    rows = max(len(frame) for frame in distributions.values())
    figure, flat = _new_axes_grid(axes, figure, (1, count), (5.2 * count, 0.42 * rows + 1.9),
                                  "plot_next_token_distributions")
    for ax, (name, frame) in zip(flat, distributions.items()):
        missing = [c for c in ("token", "probability") if c not in getattr(frame, "columns", ())]
        if missing:
            raise ValueError(f"distributions['{name}'] must be a DataFrame with columns token and probability")
        tokens, values = list(frame["token"]), np.asarray(frame["probability"], dtype=np.float64)
        positions = np.arange(len(tokens))[::-1]
        ax.barh(positions, values, color=arm_color(name), edgecolor="none")
        for y, value in zip(positions, values):
            ax.annotate(f"{value:.3f}", (value, y), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=FONT_SIZE - 2)
        ax.set_yticks(positions, [visible_token(t) for t in tokens], fontsize=FONT_SIZE - 1)
        ax.set_xlim(0, 1.0)
        ax.set_xlabel(tr("probability of the next token"), fontsize=FONT_SIZE)
        ax.set_title(tr("{value}\nafter “{prefix}” at T = {temperature:.2f}", value=tr(ARM_LABELS.get(name, name)), prefix=prefix, temperature=temperature), fontsize=FONT_SIZE)
        ax.tick_params(axis="x", labelsize=FONT_SIZE - 1)
    flat[0].set_ylabel(tr("next token (␣ = a leading space)"), fontsize=FONT_SIZE)
    return figure


# --- the arms, compared: the full grid's table and figure ---

LM_METRICS = {  # column → (panel title, axis label, lower is better?)
    "test_perplexity": ("Test perplexity (teacher-forced)", "perplexity on the test queries (lower is better)"),
    "teacher_nll_of_samples": ("How teacher-like its own samples are",
                               "teacher's NLL of the student's samples\n(nats per token, lower = more teacher-like)"),
    "distinct_2": ("How varied its samples are", "distinct-2: share of distinct word pairs\n(higher = more varied)"),
}


def plot_lm_arms(rows, teacher: Mapping[str, float] | None = None, metrics: Sequence[str] = tuple(LM_METRICS),
                 title: str | None = None, *, axes=None, figure: Figure | None = None) -> Figure:
    """One panel per metric: each arm's mean over seeds ± one std (big dot, error bar) and every seed (small dots).

    `rows` are one dict per (arm, seed) with the metric columns (test_perplexity, teacher_nll_of_samples,
    distinct_2); `teacher` holds the teacher's own value of any metric, drawn as a dashed black line.

    Introduced in notebook 11 (11-Distilling-Language-Models).
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in LM_METRICS]
    if frame.empty or "arm" not in frame.columns:
        raise ValueError("rows must be one dict per (arm, seed) with an 'arm' column and the metric columns")
    if unknown or [m for m in metrics if m not in frame.columns]:
        raise ValueError(f"metrics must be columns of rows among {list(LM_METRICS)}, got {metrics}")
    arms = list(dict.fromkeys(frame["arm"]))
    figure, flat = _new_axes_grid(axes, figure, (1, len(metrics)), (5.6 * len(metrics), 5.4), "plot_lm_arms")
    for ax, metric in zip(flat, metrics):
        heading, label = LM_METRICS[metric]
        for x, arm in enumerate(arms):
            values = frame.loc[frame["arm"] == arm, metric].astype(float).to_numpy()
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            # a point and its spread, not a bar from 0: the arms differ by less than their size
            ax.errorbar([x], [values.mean()], yerr=[std], marker="o", markersize=13, capsize=8, linewidth=2.5,
                        color=arm_color(arm), zorder=3)
            ax.plot(x + 0.22 + np.zeros(len(values)), values, linestyle="none", marker="o", markersize=5,
                    markerfacecolor="white", markeredgecolor=arm_color(arm), zorder=3)
        if teacher and metric in teacher and teacher[metric] is not None:
            ax.axhline(float(teacher[metric]), color=ARM_COLORS["teacher"], linestyle=(0, (5, 3)), linewidth=2,
                       label=tr("teacher: {value:.2f}", value=float(teacher[metric])))
            ax.legend(loc="upper left", fontsize=FONT_SIZE - 1, framealpha=0.9)
        ax.set_xticks(range(len(arms)), [tr(ARM_TICKS.get(a, a)) for a in arms], fontsize=FONT_SIZE - 1)
        ax.set_xlim(-0.5, len(arms) - 0.3)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(tr(heading), fontsize=FONT_SIZE + 1)
        ax.set_ylabel(tr(label), fontsize=FONT_SIZE)
        ax.set_xlabel(tr("student arm (big dot: mean ± 1 std; small dots: seeds)"), fontsize=FONT_SIZE - 1)
        ax.tick_params(axis="y", labelsize=FONT_SIZE - 1)
        ax.margins(y=0.15)
    if title:
        figure.suptitle(tr(title), fontsize=FONT_SIZE + 2)
    return figure


__all__ = ["ARM_COLORS", "ARM_LABELS", "ARM_TICKS", "BETA_FIT_COLOR", "LM_METRICS", "arm_color", "plot_kl_fits",
           "visible_token", "plot_position_targets", "plot_next_token_distributions", "plot_lm_arms"]
