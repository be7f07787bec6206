"""Boundary checks for inbound updates: names, shapes, dtypes and finiteness.

Every backend runs a client's result through :func:`check_update` before a strategy sees it, so a
malformed or poisoned-by-NaN update is a failure of that client, never a crash of the round.
"""

from __future__ import annotations

import numpy as np

from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.types import FitRes
from fedloom.errors import ValidationError

__all__ = ["check_update", "check_fit_result"]


def check_update(update: Parameters, expected: ParamSpec, *, check_dtype: bool = True) -> None:
    """Raise :class:`ValidationError` unless ``update`` matches ``expected`` and is finite."""
    names, want = list(update), list(expected)
    if names != want:
        missing = [n for n in want if n not in update]
        extra = [n for n in names if n not in expected]
        if missing or extra:
            raise ValidationError(f"update has wrong names: missing {missing}, unexpected {extra}")
        raise ValidationError("update has the expected names in a different order")
    for name, arr in update.items():
        spec = expected[name]
        if tuple(arr.shape) != spec.shape:
            raise ValidationError(f"{name!r}: shape {tuple(arr.shape)} != expected {spec.shape}")
        if check_dtype and arr.dtype.str[1:] != spec.dtype:
            raise ValidationError(f"{name!r}: dtype {arr.dtype.str[1:]} != expected {spec.dtype}")
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise ValidationError(f"{name!r}: contains NaN or infinite values")


def check_fit_result(res: object, expected: ParamSpec) -> None:
    """Validate a client's fit result at the boundary (type, example count, parameters)."""
    if not isinstance(res, FitRes):
        raise ValidationError(f"fit must return FitRes, got {type(res).__name__}")
    if isinstance(res.num_examples, bool) or not isinstance(res.num_examples, int) or res.num_examples < 0:
        raise ValidationError(f"num_examples must be a non-negative int, got {res.num_examples!r}")
    check_update(res.parameters, expected)
