"""The codec interface: clients encode their update, the server decodes it before aggregation.

A codec compresses an *update* (client parameters minus the global parameters it started from),
never raw weights: updates are small, centred on zero and tolerate lossy coding far better. The
compressed payload is itself a :class:`~fedloom.core.parameters.Parameters` of ordinary named
arrays (int8 codes and float32 scales, packed 4-bit codes, uint32 indices and float32 values), so
every transport carries it unchanged and the backends count its bytes like any other payload.

Decoding is the server's boundary check for compressed payloads: every ``decode`` verifies names,
dtypes, sizes and value ranges against the global model's spec and raises
:class:`~fedloom.errors.ValidationError` for anything malformed, which the round loop records as a
failure of that client.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fedloom.core.codec import Codec
from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.errors import ValidationError

__all__ = ["Codec", "spec_size", "expect_array", "check_payload_names"]


def spec_size(spec: ParamSpec) -> int:
    """Total number of elements the spec describes."""
    return int(sum(int(np.prod(s.shape, dtype=np.int64)) for s in spec.values()))


def check_payload_names(payload: Parameters, expected: Iterable[str], codec: str) -> None:
    """Raise unless ``payload`` has exactly the ``expected`` names (any order)."""
    want = list(expected)
    got = set(payload)
    if got != set(want):
        missing = [n for n in want if n not in got]
        extra = sorted(got - set(want))
        raise ValidationError(
            f"{codec} payload has wrong names: missing {missing[:5]}, unexpected {extra[:5]} "
            "(is the client using the same --compression as the server?)"
        )


def expect_array(payload: Parameters, name: str, dtype: str, size: int) -> np.ndarray:
    """The 1-D array ``name`` of ``payload``, checked for dtype and element count."""
    arr = payload[name]
    if arr.dtype != np.dtype(dtype):
        raise ValidationError(f"{name!r}: dtype {arr.dtype} != expected {dtype}")
    if arr.size != size:
        raise ValidationError(f"{name!r}: {arr.size} elements != expected {size}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValidationError(f"{name!r}: contains NaN or infinite values")
    return arr.reshape(-1)
