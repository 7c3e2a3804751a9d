"""Forward vs reverse KL as a picture: one Gaussian q fitted to a two-peaked p (notebook 11).

A language model's next-token distribution is a softmax over a vocabulary. Here the "vocabulary" is a grid of
points on a line: the target p (the teacher) has two peaks, the student q is a single Gaussian with a mean μ and a
width σ, and its logits are -(x - μ)² / (2σ²). Fitting q by the forward KL(p ‖ q) spreads it over both peaks
(mode-covering); fitting it by the reverse KL(q ‖ p) puts it on one peak (mode-seeking). The generalised JSD of
GKD (Agarwal et al. 2023, https://arxiv.org/abs/2306.13649) with a mixture weight β lies between them: the loss
itself tends to 0 as β → 0 or 1 (the ends are defined separately, as the two KLs), while its minimiser tends to
the covering fit as β → 0 and to the seeking one as β → 1; in between, the best q stays wide for small β and
jumps onto a peak where the seeking minimum becomes the lower one. Every fit here minimises `kdlab.generalized_jsd` itself,
with the grid as a vocabulary of shape (1, 1, points).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .checks import check_beta, check_count
from .losses import generalized_jsd

# The target: two Gaussian peaks (centre, width, weight). The heavier, narrower peak on the left is the one the
# mode-seeking fit finds; the covering fit sits between them with a width that reaches both.
PEAKS: tuple[tuple[float, float, float], ...] = ((-2.5, 0.6, 0.6), (2.5, 0.9, 0.4))
GRID = np.linspace(-6.0, 6.0, 241)
# β values of the slider's table: the two ends (the KLs) and 19 steps between (the generalised JSD).
TABLE_BETAS = tuple(round(b, 2) for b in np.linspace(0.0, 1.0, 21))


@dataclass(frozen=True)
class GaussianFit:
    """One fitted q: the β it minimised, its mean and width, the divergence at the fit, and q on the grid."""

    beta: float
    mu: float
    sigma: float
    divergence: float
    """The loss at the fit: KL(p‖q) at β = 0, KL(q‖p) at β = 1, the generalised JSD between."""
    q: np.ndarray
    """q's probabilities on the grid (they sum to 1)."""


def target_log_probs(grid: np.ndarray = GRID, peaks: Sequence[tuple[float, float, float]] = PEAKS) -> np.ndarray:
    """log p on the grid for a mixture of Gaussian peaks (centre, width, weight), normalised over the grid points."""
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or len(grid) < 3 or not np.all(np.diff(grid) > 0):
        raise ValueError(f"grid must be 1-D, increasing, with at least 3 points, got shape {grid.shape}")
    if not peaks:
        raise ValueError("peaks must hold at least one (centre, width, weight)")
    parts = []
    for centre, width, weight in peaks:
        if not (width > 0 and weight > 0):
            raise ValueError(f"each peak needs a width > 0 and a weight > 0, got {(centre, width, weight)}")
        parts.append(np.log(weight) - 0.5 * ((grid - centre) / width) ** 2 - np.log(width))
    # log-sum-exp: far in the tails p is tiny but its log stays finite, so every KL below is finite
    log_p = np.logaddexp.reduce(np.stack(parts), axis=0)
    return log_p - np.logaddexp.reduce(log_p)


def gaussian_logits(grid: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """The student's logits on the grid: a softmax of -(x - μ)² / (2σ²) is a Gaussian, normalised over the points."""
    return -0.5 * ((grid - mu) / sigma) ** 2


def divergence(q_logits: Tensor, p_log_probs: Tensor, beta: float) -> Tensor:
    """kdlab.generalized_jsd between q (student) and p (teacher) on the grid, as one 'position' of a vocabulary.

    Introduced in notebook 11 (11-Distilling-Language-Models), used by `fit_gaussian`.
    """
    return generalized_jsd(q_logits.reshape(1, 1, -1), p_log_probs.reshape(1, 1, -1), beta=beta)


def fit_gaussian(beta: float, grid: np.ndarray = GRID, peaks: Sequence[tuple[float, float, float]] = PEAKS,
                 steps: int = 60) -> GaussianFit:
    """Fit q(μ, σ) to the two-peaked p by minimising the generalised JSD at β (0 = forward KL, 1 = reverse KL).

    The reverse KL has more than one minimum (a wide q between the peaks is a local one), so the fit starts L-BFGS
    (float64) from p's mean and spread and from every peak, and keeps the lowest: deterministic, about 0.05 s.
    Between the ends the loss is divided by β(1 − β) while fitting, because it shrinks to 0 at both ends; that
    changes its size, not where its minimum lies.

    Introduced in notebook 11 (11-Distilling-Language-Models), used by `fit_table`.
    """
    beta = check_beta(beta)
    steps = check_count(steps, "steps")
    log_p = torch.as_tensor(target_log_probs(grid, peaks))
    x = torch.as_tensor(np.asarray(grid, dtype=np.float64))
    p = log_p.exp()
    mean = float((p * x).sum())
    starts = [(mean, float((p * (x - mean) ** 2).sum().sqrt()))] + [(c, w) for c, w, _ in peaks]
    fits = [_fit_from(start, x, log_p, beta, steps) for start in starts]
    return min(fits, key=lambda fit: fit.divergence)


def _fit_from(start: tuple[float, float], x: Tensor, log_p: Tensor, beta: float, steps: int) -> GaussianFit:
    """One L-BFGS run over (μ, log σ) from `start`."""
    mu = torch.tensor(float(start[0]), dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(float(np.log(start[1])), dtype=torch.float64, requires_grad=True)
    scale = 1.0 if beta in (0.0, 1.0) else 1.0 / (beta * (1.0 - beta))
    optimiser = torch.optim.LBFGS([mu, log_sigma], lr=1.0, max_iter=steps, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = scale * divergence(gaussian_logits(x, mu, log_sigma.exp()), log_p, beta)
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        mu_value, sigma = float(mu), log_sigma.exp()
        logits = gaussian_logits(x, mu, sigma)
        value = float(divergence(logits, log_p, beta))
        q = torch.softmax(logits, dim=-1).numpy()
    return GaussianFit(beta, mu_value, float(sigma), value, q)


def fit_table(betas: Sequence[float] = TABLE_BETAS, grid: np.ndarray = GRID,
              peaks: Sequence[tuple[float, float, float]] = PEAKS) -> list[GaussianFit]:
    """The best fit for each β of a rising list: the slider's table, computed once (about 1 s for 21 values).

    Introduced in notebook 11 (11-Distilling-Language-Models), used by `KLDirectionExplorer`.
    """
    values = [check_beta(b) for b in betas]
    if not values or sorted(set(values)) != values:
        raise ValueError(f"betas must be a non-empty, increasing list of numbers in [0, 1], got {list(betas)}")
    return [fit_gaussian(beta, grid=grid, peaks=peaks) for beta in values]


__all__ = ["GRID", "PEAKS", "TABLE_BETAS", "GaussianFit", "divergence", "fit_gaussian", "fit_table",
           "gaussian_logits", "target_log_probs"]
