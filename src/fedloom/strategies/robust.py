"""Byzantine-robust aggregators: coordinate-wise median, trimmed mean, Krum, Multi-Krum, Bulyan,
and norm bounding.

Each class implements the :class:`~fedloom.strategies.aggregators.Aggregator` protocol (client
update vectors and weights in, one update vector out), so it composes with any strategy through
its ``aggregator=`` argument: ``FedAdam(aggregator=Krum(f=2))`` runs Krum's selection under
FedAdam's server optimizer, ``Scaffold(aggregator=CoordinateMedian())`` takes the median of the
model deltas. Selection rules (median, trimmed mean, Krum's score, Bulyan) treat every client
alike and ignore ``weights``; Multi-Krum and norm bounding average with them.

Papers:
    * Coordinate-wise median and trimmed mean: Dong Yin, Yudong Chen, Kannan Ramchandran, Peter
      Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
      ICML 2018, arXiv:1803.01498.
    * Krum and Multi-Krum: Peva Blanchard, El Mahdi El Mhamdi, Rachid Guerraoui, Julien Stainer,
      "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017.
    * Bulyan: El Mahdi El Mhamdi, Rachid Guerraoui, Sébastien Rouault, "The Hidden Vulnerability
      of Distributed Learning in Byzantium", ICML 2018, arXiv:1802.07927.
    * Norm bounding: Ziteng Sun, Peter Kairouz, Ananda Theertha Suresh, H. Brendan McMahan,
      "Can You Really Backdoor Federated Learning?", arXiv:1911.07963 (2019).

Example:
    >>> import numpy as np
    >>> ups = [np.array([1.0]), np.array([2.0]), np.array([100.0])]
    >>> CoordinateMedian()(ups, np.ones(3))
    array([2.])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedloom.core.registry import call_with_accepted
from fedloom.errors import ConfigError, RoundFailedError
from fedloom.strategies.aggregators import Aggregator, WeightedMean
from fedloom.strategies.registry import AGGREGATORS, ROBUST_ALIASES, STRATEGIES

__all__ = [
    "AGGREGATORS",
    "Bulyan",
    "CoordinateMedian",
    "Krum",
    "MultiKrum",
    "NormBound",
    "TrimmedMean",
    "build_aggregator",
]


def _stack(updates: Sequence[np.ndarray], need: int, name: str) -> np.ndarray:
    if len(updates) < need:
        raise RoundFailedError(f"{name} needs at least {need} updates this round, got {len(updates)}")
    return np.stack([np.asarray(u, dtype=np.float64) for u in updates])


class CoordinateMedian:
    """Coordinate-wise median of the updates (Yin et al., 2018); tolerates < n/2 bad clients."""

    def __call__(self, updates: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
        return np.median(_stack(updates, 1, "median"), axis=0)

    def __repr__(self) -> str:
        return "CoordinateMedian()"


class TrimmedMean:
    """Coordinate-wise trimmed mean: drop the ``floor(beta * n)`` largest and smallest values of
    each coordinate, average the rest (Yin et al., 2018). ``beta=0`` is the unweighted mean.

    Args:
        beta: Fraction trimmed from each end, in ``[0, 0.5)``. The default 0.2 removes up to 20% of
            attackers pushing one way, the fraction the docs and benchmarks use.
    """

    def __init__(self, beta: float = 0.2) -> None:
        if not 0.0 <= beta < 0.5:
            raise ConfigError(f"trim_beta must be in [0, 0.5), got {beta}")
        self.beta = beta

    def __call__(self, updates: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
        stacked = _stack(updates, 1, "trimmed_mean")
        n = stacked.shape[0]
        k = int(math.floor(self.beta * n + 1e-9))
        if n - 2 * k < 1:
            raise RoundFailedError(f"trimmed_mean with beta={self.beta} trims all {n} updates")
        ordered = np.sort(stacked, axis=0)
        return ordered[k : n - k].mean(axis=0)

    def __repr__(self) -> str:
        return f"TrimmedMean(beta={self.beta})"


def _pairwise_sq_dists(stacked: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", stacked, stacked)
    d = sq[:, None] + sq[None, :] - 2.0 * stacked @ stacked.T
    d = (d + d.T) / 2.0  # exactly symmetric, so that tied scores are exactly equal
    np.maximum(d, 0.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def _ranking(scores: np.ndarray, stacked: np.ndarray) -> list[int]:
    """Indices by increasing score; ties broken by the update's content, not its position, so that
    the result does not depend on the order in which clients reported."""
    return sorted(range(len(scores)), key=lambda i: (scores[i], stacked[i].tobytes()))


def krum_scores(stacked: np.ndarray, f: int) -> np.ndarray:
    """Krum score of each row: summed squared distance to its ``n - f - 2`` nearest other rows."""
    n = stacked.shape[0]
    k = n - f - 2
    d = _pairwise_sq_dists(stacked)
    scores = np.empty(n)
    for i in range(n):
        others = np.delete(d[i], i)
        scores[i] = np.sort(others)[:k].sum()
    return scores


class MultiKrum:
    """Multi-Krum (Blanchard et al., 2017): average the ``m`` updates with the lowest Krum scores.

    Needs ``n >= 2f + 3`` updates. ``m=1`` is Krum; ``m=n`` (with ``f`` allowed) is the mean.

    Args:
        f: Number of Byzantine clients tolerated.
        m: Updates averaged (``0``: ``n - f``).
    """

    def __init__(self, f: int = 1, m: int = 0) -> None:
        if f < 0:
            raise ConfigError(f"byzantine_f must be >= 0, got {f}")
        if m < 0:
            raise ConfigError(f"multikrum_m must be >= 0 (0 = n - f), got {m}")
        self.f = f
        self.m = m

    def select(self, stacked: np.ndarray) -> np.ndarray:
        """Indices of the selected updates, best score first."""
        n = stacked.shape[0]
        if n < 2 * self.f + 3:
            raise RoundFailedError(
                f"{type(self).__name__.lower()} with f={self.f} needs at least {2 * self.f + 3} updates, got {n}"
            )
        m = self.m or n - self.f
        scores = krum_scores(stacked, self.f)
        return np.array(_ranking(scores, stacked)[: min(m, n)], dtype=np.int64)

    def __call__(self, updates: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
        stacked = _stack(updates, 1, type(self).__name__.lower())
        chosen = self.select(stacked)
        w = np.asarray(weights, dtype=np.float64)[chosen]
        if w.sum() <= 0:
            w = np.ones(len(chosen))
        return (w[:, None] * stacked[chosen]).sum(axis=0) / w.sum()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(f={self.f}, m={self.m})"


class Krum(MultiKrum):
    """Krum (Blanchard et al., 2017): the one update closest to its ``n - f - 2`` neighbours."""

    def __init__(self, f: int = 1) -> None:
        super().__init__(f=f, m=1)

    def __repr__(self) -> str:
        return f"Krum(f={self.f})"


class Bulyan:
    """Bulyan (El Mhamdi et al., 2018): pick ``n - 2f`` updates by repeated Krum, then average, per
    coordinate, the ``n - 4f`` values closest to the coordinate's median. Needs ``n >= 4f + 3``.

    Args:
        f: Number of Byzantine clients tolerated.
    """

    def __init__(self, f: int = 1) -> None:
        if f < 0:
            raise ConfigError(f"byzantine_f must be >= 0, got {f}")
        self.f = f

    def __call__(self, updates: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
        stacked = _stack(updates, 1, "bulyan")
        n, f = stacked.shape[0], self.f
        if n < 4 * f + 3:
            raise RoundFailedError(f"bulyan with f={f} needs at least {4 * f + 3} updates, got {n}")
        remaining = list(range(n))
        selected: list[int] = []
        for _ in range(n - 2 * f):
            sub = stacked[remaining]
            # Krum on the remaining set, with its neighbourhood size clipped at 1 near the end.
            k = max(1, len(remaining) - f - 2)
            d = _pairwise_sq_dists(sub)
            scores = np.array([np.sort(np.delete(d[i], i))[:k].sum() if len(remaining) > 1 else 0.0
                               for i in range(len(remaining))])
            best = remaining[_ranking(scores, sub)[0]]
            selected.append(best)
            remaining.remove(best)
        chosen = stacked[sorted(selected)]
        beta = chosen.shape[0] - 2 * f
        med = np.median(chosen, axis=0)
        order = np.argsort(np.abs(chosen - med), axis=0, kind="stable")[:beta]
        return np.take_along_axis(chosen, order, axis=0).mean(axis=0)

    def __repr__(self) -> str:
        return f"Bulyan(f={self.f})"


class NormBound:
    """Norm bounding (Sun et al., 2019): scale each update to L2 norm at most ``max_norm``, then
    combine with ``inner`` (the weighted mean by default).

    Args:
        max_norm: The bound, > 0.
        inner: The aggregator applied to the clipped updates.
    """

    def __init__(self, max_norm: float, inner: Aggregator | None = None) -> None:
        if not max_norm > 0:
            raise ConfigError(f"clip_update_norm must be > 0, got {max_norm}")
        self.max_norm = max_norm
        self.inner: Aggregator = inner if inner is not None else WeightedMean()

    def __call__(self, updates: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
        clipped = []
        for u in updates:
            norm = float(np.linalg.norm(u))
            clipped.append(u * (self.max_norm / norm) if norm > self.max_norm else u)
        return self.inner(clipped, weights)

    def __repr__(self) -> str:
        return f"NormBound(max_norm={self.max_norm}, inner={self.inner!r})"


AGGREGATORS.register("median", lambda **_: CoordinateMedian(), help="Coordinate-wise median (Yin et al. 2018).")
AGGREGATORS.register("trimmed_mean", lambda *, trim_beta=0.2, **_: TrimmedMean(trim_beta),
                     help="Coordinate-wise trimmed mean, --trim-beta from each end (Yin et al. 2018).")
AGGREGATORS.register("krum", lambda *, byzantine_f=1, **_: Krum(byzantine_f),
                     help="Krum: the update closest to its neighbours (Blanchard et al. 2017).")
AGGREGATORS.register("multikrum", lambda *, byzantine_f=1, multikrum_m=0, **_: MultiKrum(byzantine_f, multikrum_m),
                     help="Multi-Krum: mean of the m best Krum scores (Blanchard et al. 2017).")
AGGREGATORS.register("bulyan", lambda *, byzantine_f=1, **_: Bulyan(byzantine_f),
                     help="Bulyan: Krum selection then a trimmed median (El Mhamdi et al. 2018).")


def build_aggregator(
    name: str,
    *,
    trim_beta: float = 0.2,
    byzantine_f: int = 1,
    multikrum_m: int = 0,
    clip_update_norm: float = 0.0,
) -> Aggregator:
    """The aggregator ``name`` names, wrapped in :class:`NormBound` when ``clip_update_norm > 0``.

    Example:
        >>> build_aggregator("krum", byzantine_f=2, clip_update_norm=5.0)
        NormBound(max_norm=5.0, inner=Krum(f=2))
    """
    agg: Aggregator = call_with_accepted(AGGREGATORS.get(name), trim_beta=trim_beta, byzantine_f=byzantine_f,
                                         multikrum_m=multikrum_m)  # your own factory takes what it names
    if clip_update_norm < 0:
        raise ConfigError(f"clip_update_norm must be >= 0 (0 = off), got {clip_update_norm}")
    return NormBound(clip_update_norm, agg) if clip_update_norm > 0 else agg


def _fedavg_with(aggregator: str):  # noqa: ANN202 - a StrategyBuilder
    def build(options: object, common: dict) -> object:
        from fedloom.strategies.fedavg import FedAvg

        return FedAvg(**common)

    build.__doc__ = f"FedAvg with --aggregator {aggregator}."
    return build


for _name in ROBUST_ALIASES:  # --strategy median == --strategy fedavg --aggregator median
    STRATEGIES.register(_name, _fedavg_with(_name))
