"""Aggregators: how a set of client updates combines into one.

An aggregator maps client updates (each a flat float64 vector: client parameters minus the global
parameters) and their weights to one update vector. Strategies take an aggregator as a part, so a
robust aggregator (median, Krum, ...) composes with any strategy's client and server logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from fedloom.errors import RoundFailedError
from fedloom.strategies.registry import AGGREGATORS

__all__ = ["Aggregator", "WeightedMean"]


@runtime_checkable
class Aggregator(Protocol):
    """Combine client update vectors with non-negative weights into one vector."""

    def __call__(self, updates: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray: ...


class WeightedMean:
    """The FedAvg combination: ``sum_i w_i u_i / sum_i w_i``.

    Example:
        >>> WeightedMean()([np.array([1.0]), np.array([4.0])], np.array([1.0, 2.0]))
        array([3.])
    """

    def __call__(self, updates: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights, dtype=np.float64)
        total = float(weights.sum())
        if not updates or total <= 0:
            raise RoundFailedError("cannot average zero updates (or updates with zero total weight)")
        acc = np.zeros_like(updates[0], dtype=np.float64)
        for w, u in zip(weights, updates, strict=True):
            acc += (w / total) * u
        return acc

    def __repr__(self) -> str:
        return "WeightedMean()"


@AGGREGATORS.register("mean", help="The (example-weighted) mean: FedAvg's combination.")
def _mean(**_: object) -> WeightedMean:
    return WeightedMean()
