"""The exact discrete Gaussian sampler and the grid release built on it (privacy/noise.py)."""

from __future__ import annotations

import decimal
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from fedloom.privacy import noise
from fedloom.privacy.noise import SYSTEM, SeededRandom, discrete_gaussian, gaussian_release, grid_step


def exact_pmf(sigma: float, support: np.ndarray) -> np.ndarray:
    """P(y) of N_Z(0, sigma^2) on ``support``, normalised over a range wide enough to be exact in float64."""
    wide = np.arange(-int(40 * sigma) - 40, int(40 * sigma) + 41)
    mass = np.exp(-(wide.astype(float) ** 2) / (2 * sigma**2))
    return np.exp(-(support.astype(float) ** 2) / (2 * sigma**2)) / mass.sum()


def chi_square_pvalue(draws: np.ndarray, sigma: float) -> float:
    """Goodness of fit of ``draws`` to the discrete Gaussian, tails pooled."""
    edge = int(math.ceil(3 * sigma))
    support = np.arange(-edge, edge + 1)
    pmf = exact_pmf(sigma, support)
    observed = np.array([np.sum(draws == y) for y in support] + [np.sum(np.abs(draws) > edge)])
    expected = np.append(pmf, 1 - pmf.sum()) * draws.size
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("sigma", [0.8, 1.5, 4.0])
def test_small_sigma_draws_follow_the_exact_pmf(sigma):
    draws = discrete_gaussian(sigma, 60_000, SYSTEM)
    assert draws.dtype == np.int64
    assert chi_square_pvalue(draws, sigma) > 1e-4


@pytest.mark.parametrize("sigma", [3.0, 57.3, 1e6 + 0.5])
def test_mean_is_zero_and_variance_is_sigma_squared(sigma):
    draws = discrete_gaussian(sigma, 100_000, SYSTEM).astype(np.float64)
    se = sigma / math.sqrt(draws.size)
    assert abs(draws.mean()) < 5 * se
    assert draws.std() == pytest.approx(sigma, rel=0.01)  # for sigma >= 1 the discrete variance is sigma^2 to 1e-8


def test_the_exact_slow_path_alone_gives_the_same_distribution(monkeypatch):
    # Widen the fast path's uncertainty band so that nearly every decision goes to the exact
    # decimal/Fraction comparison: the draws must still fit the pmf.
    monkeypatch.setattr(noise, "_EXP_SLACK", 0.999)
    calls = []
    real = noise._exact_below
    monkeypatch.setattr(noise, "_exact_below", lambda *a: calls.append(1) or real(*a))
    draws = discrete_gaussian(1.5, 3000, SYSTEM)
    assert len(calls) > 3000
    assert chi_square_pvalue(draws, 1.5) > 1e-4


def test_exact_comparison_against_exp_by_hand():
    # U in [top/2^53, (top+1)/2^53); exp(-1) = 0.36787944117144233...
    below = int(0.3678794411714 * 2**53)
    above = int(0.3678794411715 * 2**53)
    assert noise._exact_below(below, Fraction(1), SYSTEM) is True
    assert noise._exact_below(above, Fraction(1), SYSTEM) is False
    lo, hi = noise._exp_bounds(Fraction(1), 60)
    reference = Fraction(decimal.Context(prec=120).exp(decimal.Decimal(-1)))  # e^-1 to 1e-120
    assert lo < reference < hi and hi - lo < Fraction(1, 10**58)


def test_release_lands_on_the_grid_with_the_calibrated_std():
    values = np.random.default_rng(0).normal(0, 3, 50_000)
    out, std = gaussian_release(values, sensitivity=0.5, noise_multiplier=2.0, source=SYSTEM)
    gamma = grid_step(0.5, values.size)
    assert math.log2(gamma).is_integer() and math.sqrt(values.size) * gamma <= 0.5 * 2**-10
    steps = out / gamma
    assert np.array_equal(steps, np.round(steps))  # exactly grid points: no low-order bits to read
    want = 2.0 * (0.5 + gamma * (math.sqrt(values.size) + 1))
    assert std == pytest.approx(want) and want == pytest.approx(1.0, rel=2e-3)
    assert np.std(out - values) == pytest.approx(std, rel=0.02)
    same, zero = gaussian_release(values, sensitivity=0.5, noise_multiplier=0.0, source=SYSTEM)
    assert zero == 0.0 and np.array_equal(same, values)


def test_sources_system_differs_seeded_reproduces():
    assert not np.array_equal(SYSTEM.words(8), SYSTEM.words(8))
    a = discrete_gaussian(10.0, 100, SeededRandom.from_seed(3))
    b = discrete_gaussian(10.0, 100, SeededRandom.from_seed(3))
    np.testing.assert_array_equal(a, b)
    assert SeededRandom.from_seed(3).reproducible and not SYSTEM.reproducible
    below = SYSTEM.below(60_000, 6)
    assert below.min() == 0 and below.max() == 5
    assert stats.chisquare(np.bincount(below, minlength=6)).pvalue > 1e-4
    with pytest.raises(ValueError):
        discrete_gaussian(0.0, 3, SYSTEM)
