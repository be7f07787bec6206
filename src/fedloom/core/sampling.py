"""Client sampling schemes: who trains in a round, and how many times each client was drawn.

Three schemes, selected per strategy (``FedAvg(sampling=...)``, ``--sampling``):

``uniform``
    ``K = max(min_clients, ceil(fraction * N))`` distinct clients, uniformly without replacement
    (fedloom's default, and what the released code of FedAvg and FedProx does).
``size``
    ``K`` independent draws *with replacement*, client ``k`` with probability ``n_k / n`` (its share
    of the training examples): FedProx's Algorithm 2 (Li et al. 2020) and the sampling in the
    analysis of FedAvg (Li et al. 2020, "On the Convergence of FedAvg on Non-IID Data", scheme I).
    Paired with ``weighting="uniform"`` the aggregate is the plain mean of the ``K`` draws, an
    unbiased estimate of the example-weighted full-participation average.
``poisson``
    Each client joins independently with probability ``q = fraction``: the cohort size is
    ``Binomial(N, q)`` and may be 0 (the round then changes nothing). The scheme DP-SGD/DP-FedAvg
    privacy accounting assumes.

A client drawn ``m`` times by ``size`` sampling trains **once** and its result counts ``m`` times
(its aggregation weight is multiplied by ``m``). In Algorithm 2 it would train ``m`` times from the
same global model; fedloom derives each task's random seed from ``(run seed, round, client)``, so
those ``m`` trainings would be the same computation and return the same model: counting one
result ``m`` times is the same aggregate, for ``1/m`` of the work (and a client's own state, e.g.
SCAFFOLD's ``c_i``, is updated once, as in one task).

Example:
    >>> import numpy as np
    >>> cohort = sample_cohort(np.random.default_rng(0), ["a", "b", "c"], scheme="size", fraction=1.0,
    ...                        min_clients=1, sizes={"a": 1, "b": 1, "c": 98})
    >>> sum(cohort.draws), cohort.clients[-1]
    (3, 'c')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedloom.core.types import ClientId
from fedloom.errors import ConfigError, RoundFailedError

__all__ = ["SAMPLING_SCHEMES", "WEIGHTING_SCHEMES", "Cohort", "cohort_size", "sample_cohort", "sample_uniform",
           "sample_by_size", "sample_poisson"]

SAMPLING_SCHEMES: tuple[str, ...] = ("uniform", "size", "poisson")
"""The client sampling schemes (``--sampling``)."""

WEIGHTING_SCHEMES: tuple[str, ...] = ("examples", "uniform")
"""How results are weighted in the mean (``--weighting``): by example count, or equally."""


@dataclass(frozen=True)
class Cohort:
    """The clients sampled for a round, in the order given, each with how many times it was drawn.

    Attributes:
        clients: Distinct sampled clients.
        draws: For each client, the number of draws that picked it (1 except under ``size`` sampling).
    """

    clients: list[ClientId]
    draws: list[int]

    def multiplicity(self) -> dict[ClientId, int]:
        """``{client: draws}``."""
        return dict(zip(self.clients, self.draws, strict=True))


def cohort_size(n: int, fraction: float, min_clients: int) -> int:
    """``K = min(n, max(min_clients, ceil(fraction * n)))``: the fixed cohort size (or draws)."""
    return min(n, max(min_clients, math.ceil(fraction * n - 1e-9)))


def _check_available(n: int, min_clients: int) -> None:
    if n < min_clients:
        raise RoundFailedError(f"need at least {min_clients} clients, only {n} available")


def sample_uniform(rng: np.random.Generator, clients: Sequence[ClientId], fraction: float,
                   min_clients: int) -> list[ClientId]:
    """``K`` distinct clients, uniformly without replacement, in the order given.

    Raises:
        RoundFailedError: fewer than ``min_clients`` clients are available.
    """
    n = len(clients)
    _check_available(n, min_clients)
    k = cohort_size(n, fraction, min_clients)
    if k == n:
        return list(clients)
    chosen = np.sort(rng.choice(n, size=k, replace=False))
    return [clients[i] for i in chosen]


def sample_by_size(rng: np.random.Generator, clients: Sequence[ClientId], draws: int,
                   sizes: Mapping[ClientId, int]) -> Cohort:
    """``draws`` independent draws with replacement, client ``k`` with probability ``n_k / sum(n)``.

    Raises:
        ConfigError: a client's size is unknown, or every size is 0.
    """
    missing = [cid for cid in clients if cid not in sizes]
    if missing:
        raise ConfigError(f"--sampling size needs every client's example count; unknown for client(s) "
                          f"{', '.join(map(str, missing[:3]))}. A simulation knows them; a deployed server "
                          "does not: use --sampling uniform or poisson there")
    weights = np.array([float(sizes[cid]) for cid in clients], dtype=np.float64)
    if not weights.sum() > 0:
        raise ConfigError("--sampling size: every available client has 0 examples")
    picks = rng.choice(len(clients), size=draws, replace=True, p=weights / weights.sum())
    counts = np.bincount(picks, minlength=len(clients))
    chosen = [int(i) for i in np.flatnonzero(counts)]
    return Cohort([clients[i] for i in chosen], [int(counts[i]) for i in chosen])


def sample_poisson(rng: np.random.Generator, clients: Sequence[ClientId], rate: float) -> list[ClientId]:
    """Each client independently with probability ``rate``, in the order given (possibly none)."""
    if rate >= 1.0:
        return list(clients)
    draws = rng.random(len(clients))
    return [cid for cid, u in zip(clients, draws, strict=True) if u < rate]


def sample_cohort(rng: np.random.Generator, clients: Sequence[ClientId], *, scheme: str, fraction: float,
                  min_clients: int, sizes: Mapping[ClientId, int] | None = None) -> Cohort:
    """Sample a round's cohort by ``scheme`` (one of :data:`SAMPLING_SCHEMES`).

    Args:
        rng: The server's generator (``ServerState.rng``).
        clients: The available clients.
        scheme: ``uniform``, ``size`` or ``poisson``.
        fraction: The cohort fraction (``uniform``, ``size``: ``K = ceil(fraction * N)``, at least
            ``min_clients``) or the inclusion probability ``q`` (``poisson``).
        min_clients: Fewer available clients fail the round; the smallest fixed cohort.
        sizes: Each client's training example count (``size`` only).

    Raises:
        RoundFailedError: fewer than ``min_clients`` clients are available.
        ConfigError: an unknown scheme, or ``size`` without the clients' sizes.
    """
    if scheme == "uniform":
        chosen = sample_uniform(rng, clients, fraction, min_clients)
        return Cohort(chosen, [1] * len(chosen))
    _check_available(len(clients), min_clients)
    if scheme == "size":
        return sample_by_size(rng, clients, cohort_size(len(clients), fraction, min_clients), sizes or {})
    if scheme == "poisson":
        chosen = sample_poisson(rng, clients, fraction)
        return Cohort(chosen, [1] * len(chosen))
    raise ConfigError(f"unknown sampling scheme {scheme!r}; choose one of: {', '.join(SAMPLING_SCHEMES)}")
