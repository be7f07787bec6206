"""Fixed-point encoding of clipped updates into the ring ``Z_m`` (``m = 2^bits``) for secure summation.

Each client clips its update (the delta from the global model) to L2 norm ``C``, so every coordinate
lies in ``[-C, C]``; it multiplies by ``scale`` and rounds stochastically (unbiased: ``E[q] = x*scale``)
to a signed integer, stored in two's complement modulo ``m``. The number of levels per bound is an
INTEGER ``L``, computed with integer arithmetic so that the sum of ``n`` clients stays inside
``(-m/2, m/2)``: ``n * (L + 1) <= m/2 - 1``. ``L`` is capped at ``2^52``: a float64 carries no more
precision, and beyond it ``x * L / B`` could round past ``L`` (which is how a float scale made
``+2`` decode as ``-2`` for ``bits >= 56``). Encoded integers are clamped to ``[-(L+1), L+1]``,
so a sum of ``n`` encodings decodes exactly, with an error of at most ``n / scale`` per coordinate
from rounding. A ring too small for ``n`` clients is a :class:`ConfigError`, never a silent overflow.

Example:
    >>> q = Quantizer(bits=32, num_clients=4, bound=1.0)
    >>> ring = q.encode(np.array([0.5, -0.25]), np.random.default_rng(0))
    >>> bool(np.abs(q.decode(ring) - [0.5, -0.25]).max() <= 1 / q.scale)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedloom.errors import ConfigError
from fedloom.privacy.secagg.crypto import ring_dtype

__all__ = ["MAX_LEVELS", "Quantizer", "clip_l2"]

MAX_LEVELS = 1 << 52
"""The most levels a bound is cut into: float64 inputs carry no more precision."""


def clip_l2(vector: np.ndarray, clip: float) -> tuple[np.ndarray, bool]:
    """``vector`` scaled down to L2 norm ``clip`` if longer; also whether it was already within."""
    norm = float(np.sqrt(np.square(vector).sum()))  # not BLAS: its threads spin on busy machines
    if norm <= clip:
        return vector, True
    return vector * (clip / norm), False


@dataclass(frozen=True)
class Quantizer:
    """Encode vectors with ``|x_j| <= bound`` into ``Z_{2^bits}`` so that ``num_clients`` of them sum safely.

    Args:
        bits: Ring size ``m = 2^bits`` (2..64); uploads use the narrowest unsigned dtype that fits.
        num_clients: The most vectors that will ever be summed (the clients of a round).
        bound: Every encoded coordinate satisfies ``|x_j| <= bound``.
    """

    bits: int
    num_clients: int
    bound: float

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 64:
            raise ConfigError(f"secagg_bits must be in 2..64, got {self.bits}")
        if self.num_clients < 1:
            raise ConfigError("a secure sum needs at least one client")
        if not self.bound > 0:
            raise ConfigError(f"the clipping bound must be > 0, got {self.bound}")
        if self.levels < 1:
            raise ConfigError(
                f"a ring of 2^{self.bits} cannot hold the sum of {self.num_clients} clients without overflow; "
                f"raise --secagg-bits (at least {self.min_bits(self.num_clients)} for any useful precision)"
            )

    @staticmethod
    def min_bits(num_clients: int) -> int:
        """Smallest ring for which ``num_clients`` clients leave room for at least one level per unit."""
        return (4 * num_clients + 1).bit_length() + 1  # ceil(log2(4n + 2)) + 1, in integers

    @property
    def modulus(self) -> int:
        return 1 << self.bits

    @property
    def dtype(self) -> np.dtype:
        return ring_dtype(self.bits)

    @property
    def levels(self) -> int:
        """``L``: the largest integer with ``n * (L + 1) <= m/2 - 1``, at most ``2^52`` (integer arithmetic)."""
        half = (self.modulus >> 1) - 1
        return min(half // self.num_clients - 1, MAX_LEVELS)

    @property
    def scale(self) -> float:
        """Levels per unit: ``L / bound``."""
        return self.levels / self.bound

    @property
    def error_bound(self) -> float:
        """Worst-case absolute error per coordinate of a decoded sum of ``num_clients`` vectors."""
        return self.num_clients / self.scale

    def encode(self, vector: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Stochastically round ``vector * scale`` and reduce it into the ring."""
        x = np.asarray(vector, dtype=np.float64)
        if x.size and float(np.abs(x).max()) > self.bound * (1 + 1e-9):
            raise ConfigError(f"value {float(np.abs(x).max()):.4g} exceeds the quantizer bound {self.bound}")
        scaled = np.clip(x, -self.bound, self.bound) * self.scale
        low = np.floor(scaled)
        ints = (low + (rng.random(x.shape) < (scaled - low))).astype(np.int64)
        top = self.levels + 1  # float rounding of x * scale can exceed L by a little: never by more than 1
        return self.reduce(np.clip(ints, -top, top))

    def reduce(self, ints: np.ndarray) -> np.ndarray:
        """Signed integers (``|v| < 2^63``) to ring elements in :attr:`dtype`."""
        ring = np.asarray(ints).astype(np.int64).view(np.uint64)
        if self.bits < 64:
            ring = ring & np.uint64(self.modulus - 1)
        return ring.astype(self.dtype)

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a + b`` in the ring (native unsigned wrap-around; ``2^bits`` divides the dtype's modulus)."""
        return self._wrap(np.add(a, b, dtype=self.dtype))

    def sub(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a - b`` in the ring."""
        return self._wrap(np.subtract(a, b, dtype=self.dtype))

    def _wrap(self, v: np.ndarray) -> np.ndarray:
        if self.bits < self.dtype.itemsize * 8:
            v &= self.dtype.type((1 << self.bits) - 1)
        return v

    def decode(self, ring: np.ndarray) -> np.ndarray:
        """Ring elements (a sum of at most ``num_clients`` encodings) back to floats."""
        v = np.asarray(ring).astype(np.uint64)
        if self.bits < 64:  # lift the upper half of the ring to negatives (uint64 wrap-around)
            v = np.where(v >= np.uint64(self.modulus >> 1), v - np.uint64(self.modulus), v)
        signed = v.view(np.int64)
        return signed.astype(np.float64) / self.scale
