"""Model parameters: an ordered mapping of names to numpy arrays, with safe serialization.

Parameters are what travels between server and clients. They serialize to the
`safetensors <https://github.com/huggingface/safetensors>`_ format: a JSON header (names,
dtypes, shapes) followed by raw little-endian buffers. Deserializing never executes code, so
bytes from an untrusted peer are safe to parse; the header's insertion order is kept in the
safetensors metadata so that a round trip preserves order exactly.

Example:
    >>> import numpy as np
    >>> p = Parameters({"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)})
    >>> Parameters.from_bytes(p.to_bytes()).names
    ['w', 'b']
    >>> p.flatten().shape
    (9,)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

from fedloom.errors import ValidationError

__all__ = ["Parameters", "ArraySpec", "ParamSpec"]

_ORDER_KEY = "fedloom.order"

# dtypes safetensors can carry; everything else is refused with a clear error.
SUPPORTED_DTYPES = frozenset(
    np.dtype(t).str[1:]
    for t in (
        np.bool_,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
    )
)


@dataclass(frozen=True)
class ArraySpec:
    """Expected dtype and shape of one named array."""

    dtype: str
    shape: tuple[int, ...]


ParamSpec = dict[str, ArraySpec]


class Parameters(Mapping[str, np.ndarray]):
    """An ordered, immutable-by-convention mapping of parameter names to numpy arrays."""

    __slots__ = ("_arrays",)

    def __init__(self, arrays: Mapping[str, np.ndarray] | None = None) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        for name, value in (arrays or {}).items():
            if not isinstance(name, str):
                raise ValidationError(f"parameter names must be str, got {type(name).__name__}")
            self._arrays[name] = np.asarray(value)

    # -- Mapping protocol -------------------------------------------------------------
    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self._arrays.items())
        return f"Parameters({body})"

    # -- Introspection ----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names in order."""
        return list(self._arrays)

    @property
    def num_elements(self) -> int:
        """Total number of scalar elements."""
        return int(sum(a.size for a in self._arrays.values()))

    @property
    def nbytes(self) -> int:
        """Payload size of the raw array buffers in bytes (what the wire carries, less header)."""
        return int(sum(a.nbytes for a in self._arrays.values()))

    def spec(self) -> ParamSpec:
        """Names, dtypes and shapes: what an inbound update is validated against."""
        return {k: ArraySpec(v.dtype.str[1:], tuple(v.shape)) for k, v in self._arrays.items()}

    def copy(self) -> Parameters:
        """A deep copy (arrays are copied)."""
        return Parameters({k: v.copy() for k, v in self._arrays.items()})

    # -- Vector view ------------------------------------------------------------------
    def flatten(self, dtype: np.dtype | type = np.float64) -> np.ndarray:
        """Concatenate every array, in order, into one 1-D vector of ``dtype``."""
        if not self._arrays:
            return np.zeros(0, dtype=dtype)
        return np.concatenate([a.reshape(-1).astype(dtype, copy=False) for a in self._arrays.values()])

    def unflatten(self, vector: np.ndarray) -> Parameters:
        """Inverse of :meth:`flatten`: split ``vector`` into arrays shaped and typed like ``self``.

        Integer and boolean arrays are rounded before the cast so that averaging integer buffers
        (e.g. BatchNorm's ``num_batches_tracked``) gives the nearest integer.
        """
        vector = np.asarray(vector)
        if vector.ndim != 1 or vector.size != self.num_elements:
            raise ValidationError(
                f"cannot unflatten a vector of shape {vector.shape} into {self.num_elements} elements"
            )
        out: dict[str, np.ndarray] = {}
        offset = 0
        for name, ref in self._arrays.items():
            chunk = vector[offset : offset + ref.size].reshape(ref.shape)
            offset += ref.size
            if ref.dtype.kind in "iub" and chunk.dtype.kind == "f":
                chunk = np.rint(chunk)
            out[name] = chunk.astype(ref.dtype, copy=True)
        return Parameters(out)

    # -- Serialization ----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Serialize to safetensors bytes (no pickle; order, dtypes and shapes preserved)."""
        arrays: dict[str, np.ndarray] = {}
        for name, arr in self._arrays.items():
            if arr.dtype.str[1:] not in SUPPORTED_DTYPES:
                raise ValidationError(
                    f"parameter {name!r} has dtype {arr.dtype}, which cannot be serialized; "
                    f"supported: {sorted(SUPPORTED_DTYPES)}"
                )
            arrays[name] = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
        # safetensors does not keep 0-d shapes, so the exact shapes travel in our metadata too.
        layout = [[name, list(arr.shape)] for name, arr in self._arrays.items()]
        return bytes(_st_save(arrays, metadata={_ORDER_KEY: json.dumps(layout)}))

    @classmethod
    def from_bytes(cls, data: bytes) -> Parameters:
        """Parse safetensors bytes produced by :meth:`to_bytes`; malformed input raises ``ValidationError``."""
        try:
            arrays = _st_load(bytes(data))
            layout = _read_layout(data)
        except ValidationError:
            raise
        except Exception as exc:  # safetensors raises its own error types for malformed headers
            raise ValidationError(f"malformed parameter payload: {exc}") from exc
        if layout is None:
            return cls(arrays)
        if sorted(name for name, _ in layout) != sorted(arrays):
            raise ValidationError("malformed parameter payload: layout metadata does not match the tensors")
        out: dict[str, np.ndarray] = {}
        for name, shape in layout:
            arr = arrays[name]
            if int(np.prod(shape)) != arr.size:
                raise ValidationError(f"malformed parameter payload: {name!r} has {arr.size} elements, not {shape}")
            out[name] = arr.reshape(shape)
        return cls(out)


def _read_layout(data: bytes) -> list[tuple[str, tuple[int, ...]]] | None:
    """Read our ``[name, shape]`` list (order and exact shapes) from the header's ``__metadata__``."""
    if len(data) < 8:
        raise ValidationError("malformed parameter payload: shorter than its header length")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise ValidationError("malformed parameter payload: header longer than payload")
    header = json.loads(bytes(data[8 : 8 + header_len]))
    meta = header.get("__metadata__") or {}
    raw = meta.get(_ORDER_KEY)
    if raw is None:
        return None
    layout = json.loads(raw)
    try:
        return [(str(name), tuple(int(d) for d in shape)) for name, shape in layout]
    except (TypeError, ValueError) as exc:
        raise ValidationError("malformed parameter payload: bad layout metadata") from exc
