"""Stochastic (unbiased) uniform quantization with per-tensor or per-block scales, 8 or 4 bits.

Paper: Dan Alistarh, Demjan Grubic, Jerry Li, Ryota Tomioka, Milan Vojnovic, "QSGD:
Communication-Efficient SGD via Gradient Quantization and Encoding", NeurIPS 2017,
arXiv:1610.02132.

Each block of ``block`` consecutive entries of a tensor (the whole tensor when ``block=0``) is
scaled by its largest magnitude ``m`` (sent as float32) onto ``s`` levels per sign (``s=127`` for 8
bits, ``s=7`` for 4 bits). An entry ``x`` with ``y = |x| s / m`` is sent as
``sign(x) (floor(y) + Bernoulli(y - floor(y)))``, so the decoded value ``code * m / s`` equals ``x``
in expectation (unbiased) and differs from it by less than one step ``m / s``; the variance per entry
is at most ``(m / s)**2 / 4``. QSGD scales by the L2 norm; the max-norm used here gives a smaller
step for the same bits. 8-bit codes travel as int8, 4-bit codes as two nibbles per uint8 (code + 8,
low nibble first).

Example:
    >>> import numpy as np
    >>> codec = StochasticQuantizer(bits=8)
    >>> update = Parameters({"w": np.array([0.5, -1.0, 0.25])})
    >>> payload = codec.encode(update, rng=np.random.default_rng(0))
    >>> sorted(payload)
    ['w::codes', 'w::scales']
    >>> codec.decode(payload, update.spec())["w"][1]
    np.float64(-1.0)
"""

from __future__ import annotations

import math

import numpy as np

from fedloom.compression.base import check_payload_names, expect_array
from fedloom.compression.registry import CODECS
from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.errors import ConfigError, ValidationError

__all__ = ["StochasticQuantizer", "CODES", "SCALES"]

CODES = "::codes"
SCALES = "::scales"


class StochasticQuantizer:
    """Unbiased ``bits``-bit quantization (8 or 4) with max-abs scales per tensor or per block.

    Args:
        bits: 8 (int8 codes, 127 levels per sign) or 4 (packed nibbles, 7 levels per sign).
        block: Entries sharing one scale; 0 means one scale per tensor.
    """

    def __init__(self, *, bits: int = 8, block: int = 0) -> None:
        if bits not in (8, 4):
            raise ConfigError(f"quantization supports 8 or 4 bits, got {bits}")
        if block < 0:
            raise ConfigError(f"quantization block must be >= 0 (0 = per tensor), got {block}")
        self.bits = bits
        self.block = block
        self.levels = 127 if bits == 8 else 7
        self.name = f"q{bits}"

    def __repr__(self) -> str:
        return f"StochasticQuantizer(bits={self.bits}, block={self.block})"

    def _blocks(self, size: int) -> tuple[int, int]:
        block = size if self.block == 0 or self.block > size else self.block
        block = max(block, 1)
        return block, math.ceil(size / block) if size else 0

    def step_bound(self, update: Parameters) -> dict[str, np.ndarray]:
        """Per-entry bound ``m / s`` on the round-trip error, for each tensor (used in tests)."""
        out = {}
        for name, arr in update.items():
            x = arr.reshape(-1).astype(np.float64)
            block, nblocks = self._blocks(x.size)
            padded = np.zeros(block * nblocks)
            padded[: x.size] = x
            scales = np.abs(padded.reshape(nblocks, block)).max(axis=1)
            out[name] = np.repeat(scales / self.levels, block)[: x.size]
        return out

    def encode(self, update: Parameters, *, rng: np.random.Generator) -> Parameters:
        out: dict[str, np.ndarray] = {}
        for name, arr in update.items():
            x = arr.reshape(-1).astype(np.float64)
            if not np.isfinite(x).all():
                raise ValidationError(f"{name!r}: cannot quantize NaN or infinite values")
            block, nblocks = self._blocks(x.size)
            padded = np.zeros(block * nblocks)
            padded[: x.size] = x
            rows = padded.reshape(nblocks, block)
            maxabs = np.abs(rows).max(axis=1) if nblocks else np.zeros(0)
            scales = maxabs.astype(np.float32)
            # The float32 scale must not be below the true maximum, or |y| could exceed the levels.
            low = scales.astype(np.float64) < maxabs
            scales[low] = np.nextafter(scales[low], np.float32(np.inf))
            safe = np.where(scales > 0, scales.astype(np.float64), 1.0)[:, None]
            y = np.abs(rows) / safe * self.levels
            floor = np.floor(y)
            q = floor + (rng.random(y.shape) < (y - floor))
            q = np.minimum(q, self.levels)
            codes = (np.sign(rows) * q).reshape(-1)[: x.size].astype(np.int8)
            out[name + CODES] = _pack4(codes) if self.bits == 4 else codes
            out[name + SCALES] = scales
        return Parameters(out)

    def decode(self, payload: Parameters, spec: ParamSpec) -> Parameters:
        names = [n + suffix for n in spec for suffix in (CODES, SCALES)]
        check_payload_names(payload, names, self.name)
        out: dict[str, np.ndarray] = {}
        for name, want in spec.items():
            size = int(np.prod(want.shape, dtype=np.int64))
            block, nblocks = self._blocks(size)
            if self.bits == 4:
                packed = expect_array(payload, name + CODES, "uint8", (size + 1) // 2)
                codes = _unpack4(packed, size, name)
            else:
                codes = expect_array(payload, name + CODES, "int8", size).astype(np.int64)
                if codes.size and int(np.abs(codes).max()) > self.levels:
                    raise ValidationError(f"{name!r}: 8-bit code -128 is outside the symmetric range")
            scales = expect_array(payload, name + SCALES, "float32", nblocks).astype(np.float64)
            if (scales < 0).any():
                raise ValidationError(f"{name!r}: negative quantization scale")
            padded = np.zeros(block * nblocks)
            padded[:size] = codes
            values = padded.reshape(nblocks, block) * (scales / self.levels)[:, None]
            out[name] = values.reshape(-1)[:size].reshape(want.shape)
        return Parameters(out)


def _pack4(codes: np.ndarray) -> np.ndarray:
    """Codes in [-7, 7] -> nibbles code + 8, two per byte (low nibble first)."""
    nibbles = (codes.astype(np.int16) + 8).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(8))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def _unpack4(packed: np.ndarray, size: int, name: str) -> np.ndarray:
    nibbles = np.empty(packed.size * 2, dtype=np.int64)
    nibbles[0::2] = packed & 0x0F
    nibbles[1::2] = packed >> 4
    if nibbles.size and int(nibbles.min()) < 1:
        raise ValidationError(f"{name!r}: 4-bit code -8 is outside the symmetric range")
    return nibbles[:size] - 8


@CODECS.register("q8", help="Unbiased stochastic 8-bit quantization (--quant-block entries per scale).")
def _q8_codec(*, quant_block: int = 0, **_: object) -> StochasticQuantizer:
    return StochasticQuantizer(bits=8, block=quant_block)


@CODECS.register("q4", help="Unbiased stochastic 4-bit quantization, two codes per byte.")
def _q4_codec(*, quant_block: int = 0, **_: object) -> StochasticQuantizer:
    return StochasticQuantizer(bits=4, block=quant_block)
