"""The codec protocol: how a client compresses its update and the server restores it.

Implementations live in :mod:`fedloom.compression` (one module each) and register themselves in
:data:`fedloom.compression.registry.CODECS`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from fedloom.core.parameters import Parameters, ParamSpec

__all__ = ["Codec"]


@runtime_checkable
class Codec(Protocol):
    """Compresses an update on the client and restores it on the server.

    ``encode`` may be random (stochastic rounding) and takes the generator to use, so a task is
    reproducible from its seed. ``decode`` returns float64 arrays shaped like ``spec``.
    """

    name: str

    def encode(self, update: Parameters, *, rng: np.random.Generator) -> Parameters:
        """Compress ``update`` into a payload of named arrays."""
        ...

    def decode(self, payload: Parameters, spec: ParamSpec) -> Parameters:
        """Restore the update from ``payload``; raise ``ValidationError`` if it is malformed."""
        ...
