"""Notebook 11's figures: forward vs reverse KL as a picture, next-token distributions, the arms of LM distillation.

One colour per student arm (ARM_COLORS), the teacher in black, in every figure of the lesson, so "orange = forward
KL" holds from the 1-D picture to the results grid.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

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
# The 1-D picture's fit at the slider's β: a colour no arm uses.
BETA_FIT_COLOR = OKABE_ITO["sky"]


def arm_color(arm: str) -> str:
    """The colour of an arm (or 'teacher') in every figure of notebook 11; an unknown arm gets grey.

    Introduced in notebook 11 (11-Distilling-Language-Models).
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

    left.fill_between(grid, target / spacing, color=OKABE_ITO["grey"], alpha=0.45, label="p: the teacher (two peaks)")
    left.plot(grid, fits[0].q / spacing, color=ARM_COLORS["forward_kl"], linewidth=3,
              label="q fitted by forward KL(p‖q), β = 0")
    left.plot(grid, fits[-1].q / spacing, color=ARM_COLORS["reverse_kl"], linewidth=3, linestyle=(0, (6, 3)),
              label="q fitted by reverse KL(q‖p), β = 1")
    left.plot(grid, current.q / spacing, color=BETA_FIT_COLOR, linewidth=2.5, linestyle=(0, (1, 1.5)),
              label=f"q fitted by generalised JSD, β = {current.beta:.2f}")
    left.set_title("One Gaussian q fitted to a two-peaked p", fontsize=FONT_SIZE + 2)
    left.set_xlabel("x (arbitrary units; each grid point is one 'token')", fontsize=FONT_SIZE)
    left.set_ylabel("probability density", fontsize=FONT_SIZE)
    left.set_ylim(0, 1.25 * max(float(target.max()), max(float(f.q.max()) for f in fits)) / spacing)
    left.legend(loc="upper right", fontsize=FONT_SIZE - 2, framealpha=0.9)

    mus, sigmas = np.array([fit.mu for fit in fits]), np.array([fit.sigma for fit in fits])
    middle.fill_between(betas, mus - sigmas, mus + sigmas, color=BETA_FIT_COLOR, alpha=0.3, step=None,
                        label="μ ± σ of the best q")
    middle.plot(betas, mus, color=OKABE_ITO["black"], marker="o", markersize=4, linewidth=1.5, label="μ of the best q")
    for n, (centre, _, _) in enumerate(kl_direction.PEAKS):
        middle.axhline(centre, color=OKABE_ITO["grey"], linestyle=(0, (4, 3)), linewidth=1.5,
                       label="p's peaks" if n == 0 else None)
    middle.axvline(current.beta, color=BETA_FIT_COLOR, linewidth=2)
    middle.set_title("Where the best q sits, for every β", fontsize=FONT_SIZE + 2)
    middle.set_xlabel("β (0 = forward KL, 1 = reverse KL)", fontsize=FONT_SIZE)
    middle.set_ylabel("x (arbitrary units)", fontsize=FONT_SIZE)
    middle.set_ylim(float(grid[0]) * 0.75, float(grid[-1]) * 0.75)
    middle.legend(loc="upper right", fontsize=FONT_SIZE - 2, framealpha=0.9)

    divergences = np.array([fit.divergence for fit in fits])
    inside = (betas > 0) & (betas < 1)
    right.plot(betas[inside], divergences[inside], color=BETA_FIT_COLOR, marker="o", markersize=5, linewidth=2,
               label="generalised JSD, 0 < β < 1")
    right.plot([0.0], [divergences[0]], linestyle="none", marker="s", markersize=10, color=ARM_COLORS["forward_kl"],
               label="forward KL (β = 0, defined separately)")
    right.plot([1.0], [divergences[-1]], linestyle="none", marker="D", markersize=10, color=ARM_COLORS["reverse_kl"],
               label="reverse KL (β = 1, defined separately)")
    right.axvline(current.beta, color=BETA_FIT_COLOR, linewidth=2)
    right.set_ylim(0, 1.35 * float(divergences.max()))
    right.set_title("The divergence left at the best q", fontsize=FONT_SIZE + 2)
    right.set_xlabel("β (0 = forward KL, 1 = reverse KL)", fontsize=FONT_SIZE)
    right.set_ylabel("divergence at the fit (nats)", fontsize=FONT_SIZE)
    right.legend(loc="upper center", fontsize=FONT_SIZE - 2, framealpha=0.9)
    for ax in (left, middle, right):
        ax.tick_params(labelsize=FONT_SIZE - 1)
    return figure


__all__ = ["ARM_COLORS", "ARM_LABELS", "BETA_FIT_COLOR", "arm_color", "plot_kl_fits"]
