"""What a client may return, converted once into the messages the round loop carries.

A client's ``fit`` may return a :class:`~fedloom.core.types.FitRes` or, as Flower's ``NumPyClient``
does, a tuple ``(parameters, num_examples, metrics)``; its ``evaluate`` an
:class:`~fedloom.core.types.EvaluateRes` or ``(loss, num_examples, metrics)``. The parameters may be
:class:`~fedloom.core.parameters.Parameters`, a ``state_dict`` (name -> tensor or array) or a list
of arrays in the order of the global model. :meth:`fedloom.core.client.Client.fit_task` converts
them here, on the client, before anything is serialized; anything else fails that client's task
with a message that says what was expected (never the whole run).

Example:
    >>> import numpy as np
    >>> template = Parameters({"w": np.zeros(2, np.float32), "b": np.zeros(1, np.float32)})
    >>> res = as_fit_res(([np.ones(2, np.float32), np.ones(1, np.float32)], 5, {}), template)
    >>> res.parameters.names, res.num_examples
    (['w', 'b'], 5)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.types import EvaluateRes, FitRes
from fedloom.errors import ValidationError

__all__ = ["as_parameters", "as_fit_res", "as_evaluate_res", "as_central_result", "call_evaluate_fn",
           "required_positional", "EXPECTED_FIT", "EXPECTED_EVALUATE"]

EXPECTED_FIT = ("FitRes(parameters, num_examples, metrics) or a tuple (parameters, num_examples, metrics), "
                "where parameters is Parameters, a state_dict or a list of arrays in the global model's order")
"""What ``fit`` may return (in error messages)."""

EXPECTED_EVALUATE = "EvaluateRes(loss, num_examples, metrics) or a tuple (loss, num_examples, metrics)"
"""What ``evaluate`` may return (in error messages)."""


def _array(value: Any, name: str) -> np.ndarray:
    """A numpy array from an array, a tensor (any device, with or without grad) or a number."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        return np.asarray(value.detach().cpu().numpy())
    if isinstance(value, (int, float, bool, np.generic, list)):
        return np.asarray(value)
    raise ValidationError(f"entry {name!r} is a {type(value).__name__}, not an array or tensor")


def as_parameters(obj: Any, template: Parameters | None = None, *, what: str = "parameters") -> Parameters:
    """``obj`` as :class:`Parameters`: itself, a mapping (a ``state_dict``) or a list of arrays.

    Args:
        obj: What the client returned.
        template: The global model the task sent; it names the arrays of a list (in its order).
        what: How messages call ``obj``.

    Raises:
        ValidationError: ``obj`` is none of those, or a list has a different number of arrays
            than ``template``.
    """
    if isinstance(obj, Parameters):
        return obj
    if isinstance(obj, Mapping):
        return Parameters({str(k): _array(v, str(k)) for k, v in obj.items()})
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        if template is None:
            raise ValidationError(f"{what}: a list of arrays needs the global model's names; return Parameters "
                                  "or a state_dict")
        names = template.names
        if len(obj) != len(names):
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ValidationError(f"{what}: got a list of {len(obj)} arrays, expected {len(names)} in the global "
                                  f"model's order ({shown})")
        return Parameters({name: _array(v, name) for name, v in zip(names, obj, strict=True)})
    raise ValidationError(f"{what}: got {type(obj).__name__}; expected Parameters, a state_dict (name -> "
                          "tensor/array) or a list of arrays")


def as_fit_res(res: Any, template: Parameters | None = None) -> FitRes:
    """A client's fit result as :class:`FitRes` (see the module docstring for what is accepted).

    Raises:
        ValidationError: naming what came back and what was expected.
    """
    if isinstance(res, FitRes):
        if isinstance(res.parameters, Parameters):
            return res
        return FitRes(as_parameters(res.parameters, template, what="fit result"), res.num_examples,
                      res.metrics, res.extras)
    if isinstance(res, tuple) and len(res) in (2, 3):
        params, num_examples = res[0], res[1]
        metrics = dict(res[2]) if len(res) == 3 and res[2] is not None else {}
        return FitRes(as_parameters(params, template, what="fit result"), _count(num_examples, "fit"), metrics)
    raise ValidationError(f"fit returned {type(res).__name__}; expected {EXPECTED_FIT}")


def as_evaluate_res(res: Any) -> EvaluateRes:
    """A client's evaluation as :class:`EvaluateRes`; ``(loss, num_examples, metrics)`` tuples too."""
    if isinstance(res, EvaluateRes):
        return res
    if isinstance(res, tuple) and len(res) in (2, 3):
        metrics = dict(res[2]) if len(res) == 3 and res[2] is not None else {}
        try:
            loss = float(res[0])
        except (TypeError, ValueError):
            raise ValidationError(f"evaluate returned loss {res[0]!r}; expected a number") from None
        return EvaluateRes(loss, _count(res[1], "evaluate"), metrics)
    raise ValidationError(f"evaluate returned {type(res).__name__}; expected {EXPECTED_EVALUATE}")


def _count(value: Any, what: str) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise ValidationError(f"{what} returned num_examples {value!r}; expected a non-negative int")


def as_central_result(out: Any) -> EvaluateRes | None:
    """A central evaluation's return value as :class:`EvaluateRes` (``None``: nothing evaluated).

    Accepted: an :class:`EvaluateRes`; a tuple ``(loss, metrics)`` (Flower's form); a mapping of
    metrics, whose ``"loss"`` entry (if any) is the loss; a bare number (the loss). Metrics may be
    numbers or strings. A result without a loss has ``loss = nan`` (the round records no loss).

    Example:
        >>> as_central_result({"accuracy": 0.5, "loss": 1.0, "note": "ok"})
        EvaluateRes(loss=1.0, num_examples=0, metrics={'accuracy': 0.5, 'note': 'ok'})
    """
    if out is None or isinstance(out, EvaluateRes):
        return out
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
        return EvaluateRes(_loss(out[0]), 0, dict(out[1]))
    if isinstance(out, Mapping):
        metrics = {str(k): v for k, v in out.items() if k != "loss"}
        return EvaluateRes(_loss(out["loss"]) if "loss" in out else math.nan, 0, metrics)
    if isinstance(out, (int, float, np.floating, np.integer)) and not isinstance(out, bool):
        return EvaluateRes(float(out), 0, {})
    raise ValidationError(f"central evaluate_fn returned {type(out).__name__}; expected EvaluateRes, a dict of "
                          "metrics (with an optional 'loss'), a tuple (loss, metrics) or None")


def _loss(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"central evaluate_fn returned loss {value!r}; expected a number") from None


def required_positional(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` requires (``-1``: unknown)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return -1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def call_evaluate_fn(fn: Callable[..., Any], rnd: int, parameters: Parameters) -> EvaluateRes | None:
    """Call a central ``evaluate_fn`` in whichever form it has, and convert what it returns.

    Forms (told apart by the positional arguments they require): ``fn(parameters)`` (fedloom's
    first form), ``fn(server_round, parameters)`` and ``fn(server_round, parameters, config)``
    (Flower's; ``config`` is ``{}``). Returns: see :func:`as_central_result`.

    Example:
        >>> import numpy as np
        >>> p = Parameters({"w": np.zeros(1)})
        >>> call_evaluate_fn(lambda rnd, params: {"round_seen": rnd}, 3, p).metrics
        {'round_seen': 3}
    """
    required = required_positional(fn)
    if required >= 3:
        out = fn(rnd, parameters, {})
    elif required == 2:
        out = fn(rnd, parameters)
    else:
        out = fn(parameters)
    return as_central_result(out)
