"""The server side of compression: decode client updates, optionally compress the broadcast.

:class:`UpdateCodec` is the round loop's :class:`~fedloom.engine.codec.RoundCodec` for
compression. It decodes each client's payload into an update, adds it to the global model the
client started from and hands the strategy ordinary full parameters, so FedAvg, FedOpt and robust
aggregators run unchanged. With ``compress_broadcast`` the global model goes out in float16 (half
the downlink bytes); clients take their update against what they received, so the rounding of the
broadcast does not accumulate in the global model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedloom.compression.base import Codec, check_payload_names
from fedloom.compression.fp16 import to_float16
from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.types import FitRes
from fedloom.errors import ValidationError

__all__ = ["UpdateCodec", "Float32Codec"]


class Float32Codec:
    """No compression: the update in float32, same names and shapes.

    Used when only the broadcast is compressed, so that clients still send their update against the
    float16 model they received and the server adds it to its full-precision model.
    """

    name = "float32"

    def encode(self, update: Parameters, *, rng: np.random.Generator) -> Parameters:
        return Parameters({k: np.asarray(v, dtype=np.float32) for k, v in update.items()})

    def decode(self, payload: Parameters, spec: ParamSpec) -> Parameters:
        check_payload_names(payload, spec, self.name)
        out: dict[str, np.ndarray] = {}
        for name, want in spec.items():
            arr = payload[name]
            if arr.dtype != np.float32 or tuple(arr.shape) != want.shape:
                raise ValidationError(f"{name!r}: expected float32{list(want.shape)}, got {arr.dtype}{list(arr.shape)}")
            if not np.isfinite(arr).all():
                raise ValidationError(f"{name!r}: contains NaN or infinite values")
            out[name] = arr.astype(np.float64)
        return Parameters(out)

    def __repr__(self) -> str:
        return "Float32Codec()"


class UpdateCodec:
    """Decode compressed client updates (and optionally send the model in float16).

    Args:
        codec: The codec clients use; ``None`` when updates travel uncompressed.
        compress_broadcast: Send the global model in float16.
    """

    def __init__(self, codec: Codec | None, *, compress_broadcast: bool = False) -> None:
        self.codec = codec
        self.compress_broadcast = compress_broadcast

    def __repr__(self) -> str:
        return f"UpdateCodec({self.codec!r}, compress_broadcast={self.compress_broadcast})"

    def encode_broadcast(self, parameters: Parameters) -> Parameters:
        return to_float16(parameters) if self.compress_broadcast else parameters

    def decode_result(self, res: FitRes, reference: Parameters) -> FitRes:
        if self.codec is None:
            return res
        delta = self.codec.decode(res.parameters, reference.spec())
        full: dict[str, np.ndarray] = {}
        for name, ref in reference.items():
            value = ref.astype(np.float64) + delta[name]
            if ref.dtype.kind in "iub":
                value = np.rint(value)
            full[name] = value.astype(ref.dtype)
        return dataclasses.replace(res, parameters=Parameters(full))
