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
from fedloom.compression.registry import CODECS
from fedloom.compression.topk import TopK
from fedloom.compression.wire import Float32Codec, UpdateCodec

COMPRESSIONS = CODECS
"""Names accepted by ``--compression`` (the codec registry; ``none`` included)."""


def make_codec(name: str, *, topk_fraction: float = 0.01, quant_block: int = 0) -> Codec | None:
    """The codec ``name`` stands for (``None`` for ``"none"``); unknown names raise ``ConfigError``."""
    return CODECS.get(name)(topk_fraction=topk_fraction, quant_block=quant_block)


__all__ = [
    "CODECS",
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
