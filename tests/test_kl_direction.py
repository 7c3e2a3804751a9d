"""kdlab.kl_direction: the 1-D picture's fits, checked against numpy moments and a brute-force search."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kdlab import kl_direction

X = kl_direction.GRID
P = np.exp(kl_direction.target_log_probs())


def numpy_divergence(q: np.ndarray, p: np.ndarray, beta: float) -> np.ndarray:
    """The generalised JSD of GKD written from its definition, in numpy, over q's last axis (β = 0 forward KL, 1 reverse)."""
    if beta == 0:
        return np.sum(p * np.log(p / q), axis=-1)
    if beta == 1:
        return np.sum(q * np.log(q / p), axis=-1)
    m = beta * p + (1 - beta) * q
    return beta * np.sum(p * np.log(p / m), axis=-1) + (1 - beta) * np.sum(q * np.log(q / m), axis=-1)


def brute_force(beta: float) -> float:
    """The divergence of the best q on a fine (μ, σ) grid."""
    mu = np.linspace(-4, 4, 161)[:, None, None]
    sigma = np.exp(np.linspace(np.log(0.3), np.log(4.0), 90))[None, :, None]
    weights = np.exp(-0.5 * ((X - mu) / sigma) ** 2)
    return float(numpy_divergence(weights / weights.sum(-1, keepdims=True), P, beta).min())


def test_target_is_a_two_peaked_distribution_on_the_grid():
    assert P.sum() == pytest.approx(1.0) and np.all(P > 0)
    peaks = [i for i in range(1, len(X) - 1) if P[i] > P[i - 1] and P[i] > P[i + 1]]
    assert [round(float(X[i]), 1) for i in peaks] == [c for c, _, _ in kl_direction.PEAKS]


def test_forward_kl_fit_matches_the_moments_of_p():
    # A softmax of -(x-μ)²/2σ² is an exponential family in (x, x²): minimising KL(p‖q) matches those two moments.
    fit = kl_direction.fit_gaussian(0.0)
    for power in (1, 2):
        assert np.sum(fit.q * X**power) == pytest.approx(np.sum(P * X**power), abs=1e-6)
    assert fit.divergence == pytest.approx(numpy_divergence(fit.q, P, 0.0), rel=1e-9)
    assert 2.0 < fit.sigma < 3.5  # wide: it covers both peaks


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.8])
def test_fits_are_at_least_as_good_as_a_brute_force_search(beta):
    fit = kl_direction.fit_gaussian(beta)
    best = brute_force(beta)
    assert fit.divergence == pytest.approx(numpy_divergence(fit.q, P, beta), rel=1e-8)
    assert fit.divergence <= best + 1e-9


def test_reverse_kl_sits_on_the_heavier_peak():
    centre, width, _ = max(kl_direction.PEAKS, key=lambda peak: peak[2])
    fit = kl_direction.fit_gaussian(1.0)
    assert fit.mu == pytest.approx(centre, abs=0.05) and fit.sigma == pytest.approx(width, abs=0.05)


def test_table_runs_from_covering_to_seeking_and_is_deterministic():
    start = time.perf_counter()
    fits = kl_direction.fit_table()
    seconds = time.perf_counter() - start
    assert seconds / len(fits) < 1.0
    assert [f.beta for f in fits] == list(kl_direction.TABLE_BETAS)
    # near the ends the minimiser approaches the two KL fits, though the loss itself tends to 0 there
    assert fits[1].mu == pytest.approx(fits[0].mu, abs=0.1) and fits[-2].mu == pytest.approx(fits[-1].mu, abs=0.1)
    assert fits[1].divergence < fits[0].divergence / 5 and fits[-2].divergence < fits[-1].divergence / 5
    again = kl_direction.fit_table(betas=(0.0, 0.5, 1.0))
    for fit in again:
        twin = fits[kl_direction.TABLE_BETAS.index(fit.beta)]
        assert (fit.mu, fit.sigma) == (twin.mu, twin.sigma)


@pytest.mark.parametrize("beta", [-0.1, 1.5, float("nan"), "0.5"])
def test_bad_beta_is_refused(beta):
    with pytest.raises(ValueError, match="beta"):
        kl_direction.fit_gaussian(beta)


def test_bad_tables_and_grids_are_refused():
    with pytest.raises(ValueError, match="increasing"):
        kl_direction.fit_table(betas=(0.5, 0.2))
    with pytest.raises(ValueError, match="grid"):
        kl_direction.target_log_probs(np.array([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="width"):
        kl_direction.target_log_probs(peaks=((0.0, -1.0, 1.0),))
