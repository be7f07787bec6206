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

from fedloom.compression.base import Codec
from fedloom.compression.fp16 import to_float16
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitRes

__all__ = ["UpdateCodec"]


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
