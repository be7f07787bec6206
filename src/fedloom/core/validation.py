"""Boundary checks for inbound updates: names, shapes, dtypes and finiteness.

Every backend runs a client's result through :func:`check_update` before a strategy sees it, so a
malformed or poisoned-by-NaN update is a failure of that client, never a crash of the round.
Federated-evaluation results go through :func:`check_evaluate_result` the same way. After a
strategy has aggregated, :func:`check_global_model` checks the new global model before the round
is committed (finite, and not absurdly far from the previous one).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.types import EvaluateRes, FitRes
from fedloom.errors import ValidationError

__all__ = ["check_update", "check_fit_result", "check_evaluate_result", "check_global_model",
           "DEFAULT_MAX_MODEL_CHANGE"]

DEFAULT_MAX_MODEL_CHANGE = 1000.0
"""Default bound on one round's global step, relative to the previous model's norm (floored at 1)."""


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


def check_fit_result(res: object, expected: ParamSpec | None) -> None:
    """Validate a client's fit result at the boundary (type, example count, parameters).

    ``expected=None`` (a strategy whose results change layout, see
    :meth:`~fedloom.core.strategy.Strategy.result_spec`): any names and shapes, every float finite."""
    if not isinstance(res, FitRes):
        raise ValidationError(f"fit must return FitRes, got {type(res).__name__}")
    if isinstance(res.num_examples, bool) or not isinstance(res.num_examples, int) or res.num_examples < 0:
        raise ValidationError(f"num_examples must be a non-negative int, got {res.num_examples!r}")
    if expected is None:
        check_update(res.parameters, res.parameters.spec())  # finiteness only
        return
    check_update(res.parameters, expected)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_evaluate_result(res: object) -> None:
    """Validate a client's federated-evaluation result (type, example count, loss, metrics).

    The loss must be a finite number; the example count a non-negative int; every numeric metric
    finite, and an ``accuracy`` within ``[0, 1]``. Example counts are not bounded here: the
    weighted mean caps them (:func:`~fedloom.core.strategy.cap_weights`).
    """
    if not isinstance(res, EvaluateRes):
        raise ValidationError(f"evaluate must return EvaluateRes, got {type(res).__name__}")
    if isinstance(res.num_examples, bool) or not isinstance(res.num_examples, int) or res.num_examples < 0:
        raise ValidationError(f"num_examples must be a non-negative int, got {res.num_examples!r}")
    if not _is_number(res.loss) or not math.isfinite(res.loss):
        raise ValidationError(f"loss must be a finite number, got {res.loss!r}")
    if not isinstance(res.metrics, dict):
        raise ValidationError(f"metrics must be a dict, got {type(res.metrics).__name__}")
    for key, value in res.metrics.items():
        number = float(value) if _is_number(value) else None  # type: ignore[arg-type]
        if number is not None and not math.isfinite(number):
            raise ValidationError(f"metric {key!r} is not finite: {value!r}")
        if key == "accuracy" and (number is None or not 0.0 <= number <= 1.0):
            raise ValidationError(f"metric 'accuracy' must be a number in [0, 1], got {value!r}")


def check_global_model(old: Parameters, new: Parameters, *, max_change: float = DEFAULT_MAX_MODEL_CHANGE) -> None:
    """Raise :class:`ValidationError` unless ``new`` is a sane successor of ``old``.

    Every floating-point entry must be finite, and (when ``max_change > 0``) the step's L2 norm
    ``||new - old||`` at most ``max_change * max(1, ||old||)``. Entries present in only one of the two
    (a strategy that changes the model's layout) are not compared.
    """
    for name, arr in new.items():
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise ValidationError(f"is not finite (entry {name!r} holds NaN or infinite values)")
    if max_change <= 0:
        return
    shared = [n for n in new if n in old and old[n].shape == new[n].shape]
    if not shared:
        return
    before = np.concatenate([old[n].reshape(-1).astype(np.float64) for n in shared])
    after = np.concatenate([new[n].reshape(-1).astype(np.float64) for n in shared])
    step, scale = float(np.linalg.norm(after - before)), max(1.0, float(np.linalg.norm(before)))
    if not step <= max_change * scale:
        raise ValidationError(
            f"moved {step:.3g} in one round (L2), more than {max_change:g} x max(1, ||previous model|| = "
            f"{scale:.3g})"
        )
