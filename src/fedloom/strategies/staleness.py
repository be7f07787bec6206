"""Staleness functions of asynchronous aggregation: how much an update trained on an old model counts.

An update's staleness ``s`` is the number of server updates between the model version a client
trained from and the version it is applied to (0: fresh). A staleness function maps ``s`` to a
weight in ``(0, 1]``:

``constant``
    ``1`` for every ``s`` (no discount).
``poly:a``
    ``(1 + s) ** -a`` (Xie et al. 2019, FedAsync; Nguyen et al. 2022, FedBuff use ``a = 0.5``).
``hinge:a,b``
    ``1`` for ``s <= b``, then ``1 / (a (s - b) + 1)`` (FedAsync's hinge).

Functions are named by a spec string (``--staleness poly:0.5``) and built by :func:`staleness_fn`
from the :data:`STALENESS` registry, whose entries are factories taking the numbers after the colon.

Example:
    >>> f = staleness_fn("poly:0.5")
    >>> f(0), f(3)
    (1.0, 0.5)
    >>> staleness_fn("hinge:1,2")(4)
    0.3333333333333333
"""

from __future__ import annotations

from collections.abc import Callable

from fedloom.core.registry import Registry
from fedloom.errors import ConfigError

__all__ = ["STALENESS", "StalenessFn", "staleness_fn", "check_staleness_spec"]

StalenessFn = Callable[[int], float]
"""``staleness -> weight`` in ``(0, 1]``, ``1`` at staleness 0."""

STALENESS: Registry[Callable[..., StalenessFn]] = Registry("staleness function", plural="staleness_functions")
"""Factories by name: ``factory(*numbers) -> StalenessFn``."""


def _constant() -> StalenessFn:
    return lambda s: 1.0


def _poly(a: float = 0.5) -> StalenessFn:
    if a < 0:
        raise ConfigError(f"staleness poly:a needs a >= 0, got {a}")
    return lambda s: float((1.0 + s) ** -a)


def _hinge(a: float = 10.0, b: float = 4.0) -> StalenessFn:
    if a < 0 or b < 0:
        raise ConfigError(f"staleness hinge:a,b needs a >= 0 and b >= 0, got {a}, {b}")
    return lambda s: 1.0 if s <= b else float(1.0 / (a * (s - b) + 1.0))


STALENESS.register("constant", _constant, help="Every update counts fully, however stale.")
STALENESS.register("poly", _poly, help="poly:a: weight (1+s)^-a (default a=0.5).")
STALENESS.register("hinge", _hinge, help="hinge:a,b: weight 1 up to staleness b, then 1/(a(s-b)+1) (default 10,4).")


def staleness_fn(spec: str) -> StalenessFn:
    """The staleness function named by ``spec`` (``"constant"``, ``"poly:0.5"``, ``"hinge:10,4"``).

    Raises:
        ConfigError: an unknown name, or numbers that do not parse or are out of range.
    """
    name, _, args = spec.partition(":")
    factory = STALENESS.get(name.strip())
    try:
        numbers = [float(x) for x in args.split(",")] if args.strip() else []
    except ValueError as exc:
        raise ConfigError(f"staleness {spec!r}: the parameters after ':' must be numbers separated by commas "
                          f"(e.g. poly:0.5, hinge:10,4)") from exc
    try:
        return factory(*numbers)
    except TypeError as exc:
        raise ConfigError(f"staleness {spec!r}: wrong number of parameters ({exc})") from exc


def check_staleness_spec(spec: str) -> None:
    """Raise :class:`ConfigError` unless ``spec`` names a staleness function (used by option validation)."""
    staleness_fn(spec)
