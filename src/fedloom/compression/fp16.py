"""Half-precision coding: every update entry as an IEEE 754 binary16 float (2 bytes instead of 4).

Deterministic round-to-nearest. For an entry ``x`` in the normal range the error is at most
``|x| * 2**-11``; below ``2**-14`` (subnormals) it is at most ``2**-25``. Entries beyond the
binary16 range (65504) cannot be coded and make ``encode`` raise.

Example:
    >>> import numpy as np
    >>> codec = Float16Codec()
    >>> update = Parameters({"w": np.array([0.1, -2.0])})
    >>> payload = codec.encode(update, rng=np.random.default_rng(0))
    >>> payload["w"].dtype
    dtype('float16')
    >>> bool(np.abs(codec.decode(payload, update.spec())["w"] - update["w"]).max() < 1e-4)
    True
"""

from __future__ import annotations

import numpy as np

from fedloom.compression.base import check_payload_names
from fedloom.compression.registry import CODECS
from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.errors import ValidationError

__all__ = ["Float16Codec", "FP16_MAX", "to_float16"]

FP16_MAX = float(np.finfo(np.float16).max)


def to_float16(parameters: Parameters) -> Parameters:
    """Cast every floating array to float16 (integer arrays unchanged); raise if out of range."""
    out: dict[str, np.ndarray] = {}
    for name, arr in parameters.items():
        if arr.dtype.kind == "f":
            if arr.size and float(np.abs(arr).max()) > FP16_MAX:
                raise ValidationError(f"{name!r}: values exceed the float16 range ({FP16_MAX:g})")
            arr = arr.astype(np.float16)
        out[name] = arr
    return Parameters(out)


class Float16Codec:
    """Code each update tensor in float16, same names and shapes."""

    name = "fp16"

    def encode(self, update: Parameters, *, rng: np.random.Generator) -> Parameters:
        return Parameters({k: _as_float16(k, v) for k, v in update.items()})

    def decode(self, payload: Parameters, spec: ParamSpec) -> Parameters:
        check_payload_names(payload, spec, self.name)
        out: dict[str, np.ndarray] = {}
        for name, want in spec.items():
            arr = payload[name]
            if arr.dtype != np.float16:
                raise ValidationError(f"{name!r}: dtype {arr.dtype} != expected float16")
            if tuple(arr.shape) != want.shape:
                raise ValidationError(f"{name!r}: shape {tuple(arr.shape)} != expected {want.shape}")
            if not np.isfinite(arr).all():
                raise ValidationError(f"{name!r}: contains NaN or infinite values")
            out[name] = arr.astype(np.float64)
        return Parameters(out)

    def __repr__(self) -> str:
        return "Float16Codec()"


def _as_float16(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.size and float(np.abs(arr).max()) > FP16_MAX:
        raise ValidationError(f"{name!r}: update exceeds the float16 range ({FP16_MAX:g})")
    return np.asarray(arr, dtype=np.float16)


@CODECS.register("fp16", help="Half precision: 2 bytes per entry, deterministic.")
def _fp16_codec(**_: object) -> Float16Codec:
    return Float16Codec()
