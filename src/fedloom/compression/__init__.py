"""Communication efficiency: compress client updates (and the broadcast), count the bytes.

Codecs (one module each): :class:`Float16Codec` (``fp16``), :class:`StochasticQuantizer`
(``q8``/``q4``, unbiased, per-tensor or per-block scales) and :class:`TopK` (``topk``, with
error feedback on the client). :class:`CompressedClient` wraps a client to send coded updates;
:class:`UpdateCodec` is the round loop's decoder on the server. See ``docs/communication.md``.

Example:
    >>> codec = make_codec("q8")
    >>> codec.name
    'q8'
"""

from __future__ import annotations

from fedloom.compression.base import Codec
from fedloom.compression.client import RESIDUAL_KEY, CompressedClient, widen_float16
from fedloom.compression.fp16 import Float16Codec, to_float16
from fedloom.compression.quantize import StochasticQuantizer
from fedloom.compression.topk import TopK
from fedloom.compression.wire import Float32Codec, UpdateCodec
from fedloom.errors import ConfigError

COMPRESSIONS: tuple[str, ...] = ("none", "fp16", "q8", "q4", "topk")
"""Names accepted by ``--compression``."""


def make_codec(name: str, *, topk_fraction: float = 0.01, quant_block: int = 0) -> Codec | None:
    """The codec ``name`` stands for (``None`` for ``"none"``)."""
    if name == "none":
        return None
    if name == "fp16":
        return Float16Codec()
    if name in ("q8", "q4"):
        return StochasticQuantizer(bits=int(name[1]), block=quant_block)
    if name == "topk":
        return TopK(fraction=topk_fraction)
    raise ConfigError(f"unknown compression {name!r}; choose one of {list(COMPRESSIONS)}")


__all__ = [
    "COMPRESSIONS",
    "RESIDUAL_KEY",
    "Codec",
    "CompressedClient",
    "Float16Codec",
    "Float32Codec",
    "StochasticQuantizer",
    "TopK",
    "UpdateCodec",
    "make_codec",
    "to_float16",
    "widen_float16",
]
