"""The codec registry (``--compression``): each codec registers a factory in its own module.

A factory takes the compression options as keywords (``topk_fraction``, ``quant_block``, and any it
ignores) and returns a :class:`~fedloom.core.codec.Codec`, or ``None`` for ``"none"``.

Example:
    >>> CODECS.get("q8")(quant_block=0).name
    'q8'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedloom.core.codec import Codec
from fedloom.core.registry import Registry

__all__ = ["CODECS", "CodecFactory"]

CodecFactory = Callable[..., Codec | None]
"""``(**compression_options) -> Codec`` (``None``: send updates uncompressed)."""

CODECS: Registry[CodecFactory] = Registry(
    "compression",
    plural="codecs",
    package="fedloom.compression",
    modules=["fedloom.compression.registry", "fedloom.compression.fp16", "fedloom.compression.quantize",
             "fedloom.compression.topk"],
)


def _none(**_: Any) -> None:
    return None


CODECS.register("none", _none, help="Send updates uncompressed (float32 as trained).")
