"""The randomness that protects privacy, and an exact discrete Gaussian sampler.

Every draw that a privacy guarantee rests on (central and local DP noise, the noise on the
adaptive-clipping count, the Poisson sampling of a DP cohort, SecAgg's stochastic rounding) comes
from a :class:`RandomSource`:

* :data:`SYSTEM` (the default) reads the operating system's CSPRNG (``os.urandom``) for every draw.
  It is never derived from the run seed and never stored in a checkpoint, so nobody who knows the
  seed, the task seeds or a checkpoint can replay it.
* :class:`SeededRandom` wraps a seeded numpy generator (the server's ``state.rng`` or a task
  seed). It exists only for ``--dp-insecure-reproducible-noise``: the noise is then reproducible
  and can be **subtracted by anyone who knows the seed: the run is not private**.

Noise on real vectors goes through :func:`gaussian_release`: the vector is rounded to a grid of
step ``gamma`` (a power of two), an integer-valued discrete Gaussian is added, and the result is
scaled back. The sampler is the exact rejection sampler of Canonne, Kamath and Steinke, "The
Discrete Gaussian for Differential Privacy", NeurIPS 2020, arXiv:2004.00010 (Algorithms 1-3), so
the released values are exactly grid points and the floating-point attack on textbook Gaussian
samplers (Mironov, "On Significance of the Least Significant Bits for Differential Privacy", CCS
2012) has no low-order bits to read. The rounding can move a vector by up to ``sqrt(d)/2`` grid
steps, so the noise is calibrated to the sensitivity ``C/gamma + sqrt(d) + 1`` in grid units;
``gamma`` is chosen so that this costs about 0.1% more noise.

Exactness and speed: each Bernoulli(exp(-x)) decision of the paper's algorithm compares a uniform
number with ``exp(-x)``. The vectorized fast path decides with 53 uniform bits against a float64
interval that provably contains ``exp(-x)``; only when those bits fall inside that interval
(probability about 1e-11 per decision) is the decision finished exactly, with more uniform bits
against ``exp(-x)`` evaluated with Python's correctly rounded ``decimal`` at growing precision.
The output distribution is therefore exactly the discrete Gaussian (given uniform bits).

Example:
    >>> z = discrete_gaussian(3.0, 10_000, SYSTEM)
    >>> bool(abs(z.mean()) < 0.2 and abs(z.std() - 3.0) < 0.2)
    True
"""

from __future__ import annotations

import decimal
import math
import os
import secrets
from collections.abc import Callable
from fractions import Fraction

import numpy as np

__all__ = [
    "SYSTEM",
    "RandomSource",
    "SeededRandom",
    "SystemRandom",
    "discrete_gaussian",
    "gaussian_release",
    "grid_step",
]

_TWO_M53 = 2.0 ** -53
_EXP_SLACK = 2.0 ** -40  # relative slack on numpy's exp (its error is a few ulps, 2^-52 each)


class RandomSource:
    """Uniform random 64-bit words, and what the mechanisms build from them."""

    reproducible: bool = False
    description: str = ""

    def words(self, n: int) -> np.ndarray:
        """``n`` independent uniform ``uint64`` words."""
        raise NotImplementedError

    def generator(self) -> np.random.Generator:
        """A numpy generator for draws that need its API (stochastic rounding, sampling)."""
        raise NotImplementedError

    def uniform(self, n: int) -> np.ndarray:
        """``n`` uniform floats in ``[0, 1)`` (53 random bits each)."""
        return (self.words(n) >> np.uint64(11)).astype(np.float64) * _TWO_M53

    def below(self, n: int, bound: int) -> np.ndarray:
        """``n`` uniform integers in ``[0, bound)`` (exact: rejection of the incomplete last block)."""
        if not 1 <= bound <= 1 << 62:
            raise ValueError(f"bound must be in 1..2^62, got {bound}")
        limit = np.uint64(((1 << 64) // bound) * bound - 1)
        out = np.empty(n, dtype=np.int64)
        todo = np.arange(n)
        while todo.size:
            w = self.words(todo.size)
            ok = w <= limit
            out[todo[ok]] = (w[ok] % np.uint64(bound)).astype(np.int64)
            todo = todo[~ok]
        return out


class SystemRandom(RandomSource):
    """The operating system's CSPRNG: ``os.urandom`` for every draw (the default)."""

    description = "csprng (os.urandom)"

    def words(self, n: int) -> np.ndarray:
        return np.frombuffer(os.urandom(8 * n), dtype="<u8").astype(np.uint64)

    def generator(self) -> np.random.Generator:
        """A fresh PCG64 seeded with 128 bits from the OS for each call (never from the run seed)."""
        return np.random.Generator(np.random.PCG64(secrets.randbits(128)))


class SeededRandom(RandomSource):
    """A seeded numpy generator: reproducible, and therefore NOT private (anyone with the seed replays it)."""

    reproducible = True
    description = "reproducible (not private)"

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    @classmethod
    def from_seed(cls, seed: int) -> SeededRandom:
        return cls(np.random.default_rng(seed))  # insecure-reproducible: only behind the explicit option

    def words(self, n: int) -> np.ndarray:
        return self.rng.bit_generator.random_raw(n).astype(np.uint64)

    def generator(self) -> np.random.Generator:
        return self.rng


SYSTEM = SystemRandom()
"""The default source of every privacy-relevant draw."""


# -- exact Bernoulli(exp(-x)) ------------------------------------------------------------------
def _exp_bounds(x: Fraction, prec: int) -> tuple[Fraction, Fraction]:
    """Rationals ``lo <= exp(-x) <= hi`` from ``decimal`` (correctly rounded exp) at ``prec`` digits."""
    down = decimal.Context(prec=prec, rounding=decimal.ROUND_FLOOR)
    up = decimal.Context(prec=prec, rounding=decimal.ROUND_CEILING)
    num, den = decimal.Decimal(x.numerator), decimal.Decimal(x.denominator)
    x_lo, x_hi = down.divide(num, den), up.divide(num, den)
    half_even = decimal.Context(prec=prec)
    hi = half_even.exp(-x_lo).next_plus(half_even)  # exp is correctly rounded: within half an ulp
    lo = half_even.exp(-x_hi).next_minus(half_even)
    return Fraction(lo), Fraction(hi)


def _exact_below(top: int, x: Fraction, source: RandomSource) -> bool:
    """Whether ``U < exp(-x)``, ``U`` uniform in ``[top / 2^53, (top + 1) / 2^53)``; more bits are drawn as needed."""
    if x == 0:
        return True
    num, bits, prec = top, 53, 40
    while True:
        lo, hi = _exp_bounds(x, prec)
        if Fraction(num + 1, 1 << bits) <= lo:
            return True
        if Fraction(num, 1 << bits) >= hi:
            return False
        num = (num << 64) | int(source.words(1)[0])
        bits, prec = bits + 64, prec * 2


def _bernoulli_exp(x_hat: np.ndarray, err: np.ndarray, exact: Callable[[int], Fraction],
                   source: RandomSource) -> np.ndarray:
    """Exact Bernoulli(exp(-x)) for each ``x = exact(i) >= 0``, where ``|x_hat[i] - x| <= err[i]``."""
    top = source.words(x_hat.size) >> np.uint64(11)
    u_lo = top.astype(np.float64) * _TWO_M53  # U lies in [u_lo, u_lo + 2^-53): exact in float64
    p_lo = np.exp(-(x_hat + err)) * (1 - _EXP_SLACK)
    p_hi = np.exp(-np.maximum(x_hat - err, 0.0)) * (1 + _EXP_SLACK) + 2.0 ** -1000
    out = u_lo + _TWO_M53 <= p_lo
    unsure = ~out & (u_lo < p_hi)
    for i in np.flatnonzero(unsure):  # about 1e-11 of the decisions
        out[i] = _exact_below(int(top[i]), exact(int(i)), source)
    return out


# -- the discrete Laplace and discrete Gaussian samplers (CKS 2020, Algorithms 2 and 3) --------
def _discrete_laplace(t: int, n: int, source: RandomSource) -> np.ndarray:
    """``n`` draws with ``P(y) proportional to exp(-|y| / t)`` (CKS Algorithm 2, ``s = 1``)."""
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    t_float = float(t)
    while todo.size:
        m = todo.size
        u = source.below(m, t)
        x_hat = u.astype(np.float64) / t_float
        def exact(i: int, u: np.ndarray = u) -> Fraction:
            return Fraction(int(u[i]), t)

        keep = _bernoulli_exp(x_hat, np.full(m, 2.0 ** -48), exact, source)
        u = u[keep]
        v = np.zeros(u.size, dtype=np.int64)
        going = np.arange(u.size)
        while going.size:  # V ~ Geometric(1 - 1/e): count successes of Bernoulli(exp(-1))
            more = _bernoulli_exp(np.ones(going.size), np.zeros(going.size), lambda i: Fraction(1), source)
            v[going[more]] += 1
            going = going[more]
        sign = (source.words(u.size) & np.uint64(1)).astype(bool)
        magnitude = u + t * v
        valid = ~(sign & (magnitude == 0))  # "-0" is rejected, so 0 is not counted twice
        accepted = np.zeros(m, dtype=bool)
        accepted[np.flatnonzero(keep)[valid]] = True
        out[todo[accepted]] = np.where(sign, -magnitude, magnitude)[valid]
        todo = todo[~accepted]
    return out


def discrete_gaussian(sigma: float, n: int, source: RandomSource) -> np.ndarray:
    """``n`` exact draws of the discrete Gaussian ``N_Z(0, sigma^2)``: ``P(y) ~ exp(-y^2 / (2 sigma^2))`` on Z.

    Canonne, Kamath, Steinke 2020, Algorithm 3: discrete Laplace proposals of scale
    ``t = floor(sigma) + 1``, accepted with probability ``exp(-(|y| - sigma^2/t)^2 / (2 sigma^2))``.
    """
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive finite number, got {sigma}")
    if sigma > 2.0 ** 40:
        raise ValueError(f"sigma {sigma:g} is too large for int64 draws")
    s2 = Fraction(sigma) ** 2  # exact: a float is a dyadic rational
    t = math.floor(sigma) + 1
    centre = float(s2 / t)  # sigma^2 / t, one rounding
    two_s2 = 2.0 * float(s2)
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        y = _discrete_laplace(t, todo.size, source)
        d = np.abs(y).astype(np.float64) - centre
        x_hat = d * d / two_s2
        err = (x_hat + np.sqrt(2.0 * x_hat) + 1.0) * 2.0 ** -44  # covers every rounding above (see module doc)

        def exact(i: int, y: np.ndarray = y) -> Fraction:
            return (abs(int(y[i])) - s2 / t) ** 2 / (2 * s2)

        keep = _bernoulli_exp(x_hat, err, exact, source)
        out[todo[keep]] = y[keep]
        todo = todo[~keep]
    return out


# -- Gaussian release of a real vector on a grid ------------------------------------------------
def grid_step(sensitivity: float, dim: int) -> float:
    """The power of two ``gamma`` for a release of ``dim`` values with L2 sensitivity ``sensitivity``.

    Small enough that rounding to the grid adds at most ``2^-10`` of the sensitivity
    (``sqrt(dim) * gamma <= 2^-10 * sensitivity``).
    """
    return 2.0 ** math.floor(math.log2(sensitivity * 2.0 ** -10 / math.sqrt(max(dim, 1))))


def gaussian_release(values: np.ndarray, *, sensitivity: float, noise_multiplier: float,
                     source: RandomSource) -> tuple[np.ndarray, float]:
    """``values`` plus discrete Gaussian noise calibrated to ``noise_multiplier`` times the L2 sensitivity.

    The values are rounded to the grid ``gamma * Z`` (:func:`grid_step`), the integer noise is
    added there, and the result is scaled back: every released value is exactly a grid point.
    Rounding moves a vector by at most ``sqrt(d)/2`` steps, so two neighbouring inputs are at most
    ``sensitivity/gamma + sqrt(d) + 1`` steps apart; the noise is ``noise_multiplier`` times that.

    Returns:
        The noised values (float64) and the standard deviation of the noise per coordinate.
    """
    values = np.asarray(values, dtype=np.float64)
    if noise_multiplier <= 0:
        return values, 0.0
    gamma = grid_step(sensitivity, values.size)
    steps = sensitivity / gamma + math.sqrt(values.size) + 1.0
    sigma = noise_multiplier * steps
    ints = np.rint(values / gamma)
    if ints.size and float(np.abs(ints).max()) + 64 * sigma >= 2.0 ** 52:
        raise ValueError("values too large for the noise grid (over 2^52 steps)")
    noisy = ints.astype(np.int64) + discrete_gaussian(sigma, values.size, source)
    return noisy.astype(np.float64) * gamma, sigma * gamma
