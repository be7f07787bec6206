"""Top-k sparsification: send only the ``k`` largest-magnitude entries of the whole update.

Papers: Dan Alistarh, Torsten Hoefler, Mikael Johansson, Sarit Khirirat, Nikola Konstantinov,
Cédric Renggli, "The Convergence of Sparsified Gradient Methods", NeurIPS 2018,
arXiv:1809.10505; Sebastian U. Stich, Jean-Baptiste Cordonnier, Martin Jaggi, "Sparsified SGD
with Memory", NeurIPS 2018, arXiv:1809.07599 (error feedback, see
:class:`~fedloom.compression.client.CompressedClient`).

Selection is global over the flattened update (all tensors together), ``k = ceil(fraction * n)``.
The payload is two arrays: ascending uint32 flat indices and their float32 values (8 bytes per kept
entry). Top-k is biased: the dropped part ``x - x_k`` satisfies
``||x - x_k||**2 <= (1 - k/n) ||x||**2``; error feedback adds it back on the client's next round.

Example:
    >>> import numpy as np
    >>> codec = TopK(fraction=0.5)
    >>> update = Parameters({"w": np.array([0.1, -3.0, 2.0, 0.0])})
    >>> payload = codec.encode(update, rng=np.random.default_rng(0))
    >>> payload["topk::indices"].tolist(), payload["topk::values"].tolist()
    ([1, 2], [-3.0, 2.0])
    >>> codec.decode(payload, update.spec())["w"].tolist()
    [0.0, -3.0, 2.0, 0.0]
"""

from __future__ import annotations

import math

import numpy as np

from fedloom.compression.base import check_payload_names, expect_array, spec_size
from fedloom.compression.registry import CODECS
from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.errors import ConfigError, ValidationError

__all__ = ["TopK", "INDICES", "VALUES"]

INDICES = "topk::indices"
VALUES = "topk::values"


class TopK:
    """Keep the ``ceil(fraction * n)`` entries of largest magnitude (at least one).

    Args:
        fraction: Share of entries kept, in (0, 1].
    """

    name = "topk"

    def __init__(self, *, fraction: float = 0.01) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"top-k fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction

    def __repr__(self) -> str:
        return f"TopK(fraction={self.fraction})"

    def k(self, n: int) -> int:
        """Entries kept out of ``n``."""
        return min(n, max(1, math.ceil(self.fraction * n - 1e-9)))

    def encode(self, update: Parameters, *, rng: np.random.Generator) -> Parameters:
        x = update.flatten()
        if x.size >= 2**32:
            raise ValidationError("top-k indices are uint32: updates must have fewer than 2**32 entries")
        k = self.k(x.size)
        idx = np.argpartition(np.abs(x), x.size - k)[x.size - k :] if k < x.size else np.arange(x.size)
        idx = np.sort(idx)
        return Parameters({INDICES: idx.astype(np.uint32), VALUES: x[idx].astype(np.float32)})

    def decode(self, payload: Parameters, spec: ParamSpec) -> Parameters:
        check_payload_names(payload, (INDICES, VALUES), self.name)
        n = spec_size(spec)
        k = self.k(n)
        idx = expect_array(payload, INDICES, "uint32", k).astype(np.int64)
        values = expect_array(payload, VALUES, "float32", k)
        if k and (int(idx.max()) >= n or (np.diff(idx) <= 0).any()):
            raise ValidationError("top-k indices must be strictly increasing and below the model size")
        flat = np.zeros(n)
        flat[idx] = values
        out: dict[str, np.ndarray] = {}
        offset = 0
        for name, want in spec.items():
            size = int(np.prod(want.shape, dtype=np.int64))
            out[name] = flat[offset : offset + size].reshape(want.shape)
            offset += size
        return Parameters(out)


@CODECS.register("topk", help="Top-k sparsification: the --topk-fraction largest entries, with error feedback.")
def _topk_codec(*, topk_fraction: float = 0.01, **_: object) -> TopK:
    return TopK(fraction=topk_fraction)
