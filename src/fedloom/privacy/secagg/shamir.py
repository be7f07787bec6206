"""t-of-k Shamir secret sharing of byte strings over the prime field ``GF(2^31 - 1)``, vectorized.

Paper: Adi Shamir, "How to Share a Secret", Communications of the ACM 22(11), 1979.

A secret of ``L`` bytes is cut into ``L/2`` 16-bit chunks, each the constant term of its own random
polynomial of degree ``t - 1``; a share is the polynomials evaluated at one non-zero point ``x``.
Any ``t`` shares give the secret back (Lagrange interpolation at 0); fewer reveal nothing. Random
coefficients come from ``os.urandom``. Products of two field elements fit in int64, so every step
is a numpy operation over all chunks and all recipients at once.

Example:
    >>> xs = np.array([1, 2, 3, 4, 5])
    >>> shares = split(b"sixteen byte key", xs, threshold=3)
    >>> combine(xs[[0, 2, 4]], shares[[0, 2, 4]])
    b'sixteen byte key'
"""

from __future__ import annotations

import os

import numpy as np

from fedloom.errors import ValidationError

__all__ = ["PRIME", "split", "combine"]

PRIME = (1 << 31) - 1
"""The field modulus (a Mersenne prime): elements and products fit in int64."""


def _random_field(shape: tuple[int, ...]) -> np.ndarray:
    """Uniform field elements from the OS CSPRNG (rejection of the single value ``PRIME``)."""
    size = int(np.prod(shape))
    out = np.frombuffer(os.urandom(4 * size), dtype="<u4").astype(np.int64) & PRIME
    bad = out == PRIME
    while bad.any():
        out[bad] = np.frombuffer(os.urandom(4 * int(bad.sum())), dtype="<u4").astype(np.int64) & PRIME
        bad = out == PRIME
    return out.reshape(shape)


def _chunks(secret: bytes) -> np.ndarray:
    if len(secret) % 2:
        raise ValidationError("shamir secrets must have an even number of bytes")
    return np.frombuffer(secret, dtype="<u2").astype(np.int64)


def split(secret: bytes, xs: np.ndarray, threshold: int) -> np.ndarray:
    """Shares of ``secret`` for the points ``xs`` (distinct, in ``1 .. PRIME-1``).

    Returns:
        An int64 array ``(len(xs), len(secret) // 2)``: row ``i`` is the share for ``xs[i]``.
    """
    xs = np.asarray(xs, dtype=np.int64)
    if threshold < 1 or threshold > len(xs):
        raise ValidationError(f"threshold must be in 1..{len(xs)} (number of shares), got {threshold}")
    if (xs <= 0).any() or (xs >= PRIME).any() or len(np.unique(xs)) != len(xs):
        raise ValidationError("share points must be distinct and in 1..PRIME-1")
    consts = _chunks(secret)
    coeffs = _random_field((threshold - 1, consts.size))
    # Horner's rule from the highest coefficient down; all recipients and chunks at once.
    acc = np.zeros((len(xs), consts.size), dtype=np.int64)
    for row in coeffs[::-1]:
        acc = (acc * xs[:, None] + row[None, :]) % PRIME
    return (acc * xs[:, None] + consts[None, :]) % PRIME


def _lagrange_at_zero(xs: list[int]) -> list[int]:
    coeffs = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * (-xj) % PRIME
                den = den * (xi - xj) % PRIME
        coeffs.append(num * pow(den, -1, PRIME) % PRIME)
    return coeffs


def combine(xs: np.ndarray, shares: np.ndarray) -> bytes:
    """The secret from shares ``shares[i]`` taken at points ``xs[i]`` (pass exactly ``threshold``).

    With fewer than the threshold the result is garbage, not an error: callers count shares first.
    """
    xs_list = [int(x) for x in np.asarray(xs)]
    if len(set(xs_list)) != len(xs_list):
        raise ValidationError("duplicate share points")
    shares = np.asarray(shares, dtype=np.int64)
    acc = np.zeros(shares.shape[1], dtype=np.int64)
    for lam, row in zip(_lagrange_at_zero(xs_list), shares, strict=True):
        acc = (acc + lam * (row % PRIME)) % PRIME
    if (acc > 0xFFFF).any():
        raise ValidationError("shamir reconstruction failed: shares are inconsistent")
    return acc.astype("<u2").tobytes()
