"""The strategy interface and the server state it evolves.

A :class:`Strategy` holds only hyperparameters; everything that changes during a run lives in one
:class:`ServerState` (global parameters, round, sampling RNG, and the typed state of each
component: server-optimizer moments, control variates, an adaptive clip norm). The round loop
checkpoints that one object, so a resumed run continues exactly where it stopped. Strategy methods
update the state in place and return diagnostics (metrics); logging, files and progress bars
belong to the runner.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.sampling import sample_uniform
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes, Metrics, Scalar
from fedloom.errors import RoundFailedError

__all__ = ["ServerState", "Strategy", "Failure", "cap_weights", "lower_median", "sample_clients",
           "weighted_mean_metrics", "DEFAULT_MAX_WEIGHT_RATIO", "too_few_results"]

DEFAULT_MAX_WEIGHT_RATIO = 10.0
"""Default cap on the weight one client may claim: this many times the round's median claimed count."""


@dataclass
class ServerState:
    """Everything a strategy needs to continue a run, in one checkpointable object.

    Attributes:
        parameters: The current global model.
        round: The last completed round (0 before the first).
        rng: The server's random generator (fixed-size client sampling, evaluation sampling).
            It is seeded from the run seed and checkpointed, so it never draws privacy noise or
            a DP cohort (those come from the OS CSPRNG, ``fedloom.privacy.noise``) unless a run
            asks for reproducible, not private, noise.
        buffers: Generic named array state (e.g. the encrypted aggregate of HE).
        values: Generic named scalar state.
        components: Typed state, one entry per part of the algorithm, e.g.
            ``{"server_opt": AdaptiveState(m, v), "scaffold": ScaffoldState(c, num_clients)}``.
            Each value is a ``NamedTuple`` or frozen dataclass whose fields are ``np.ndarray``,
            :class:`Parameters`, ``int``, ``float``, ``bool``, ``str``, ``None``, or (for composed
            optimizers) nested such records and tuples of them. Values are replaced, never mutated,
            and checkpoints store them field by field (no pickle).
    """

    parameters: Parameters
    round: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    buffers: dict[str, Parameters] = field(default_factory=dict)
    values: dict[str, Scalar] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A client task that did not produce a usable result, and why."""

    cid: ClientId
    reason: str


def too_few_results(rnd: int, got: int, needed: int, failures: Sequence[Failure], *,
                    shown: int = 3) -> RoundFailedError:
    """The error of a round with too few valid results, naming the first ``shown`` failures' reasons.

    Example:
        >>> str(too_few_results(1, 0, 1, [Failure("0", "KeyError: 'lr'")]))
        "round 1: 0 valid results, 1 needed (1 failure: client 0: KeyError: 'lr')"
    """
    text = f"round {rnd}: {got} valid results, {needed} needed ({len(failures)} failure{'s' * (len(failures) != 1)}"
    if failures:
        text += ": " + "; ".join(f"client {f.cid}: {f.reason}" for f in failures[:shown])
        if len(failures) > shown:
            text += f"; and {len(failures) - shown} more"
    return RoundFailedError(text + ")")


def sample_clients(
    rng: np.random.Generator, clients: Sequence[ClientId], fraction: float, min_clients: int
) -> list[ClientId]:
    """Sample ``max(min_clients, ceil(fraction * n))`` distinct clients, in the order given
    (:func:`fedloom.core.sampling.sample_uniform`; other schemes: :func:`~fedloom.core.sampling.sample_cohort`).

    Raises:
        RoundFailedError: fewer than ``min_clients`` clients are available.
    """
    return sample_uniform(rng, clients, fraction, min_clients)


def lower_median(values: np.ndarray | Sequence[float]) -> float:
    """The median, the lower middle value for an even count (so that with two values an outlier never
    sets it). ``nan`` for no values."""
    arr = np.sort(np.asarray(values, dtype=np.float64))
    return float(arr[(len(arr) - 1) // 2]) if len(arr) else math.nan


def cap_weights(counts: np.ndarray | Sequence[float], ratio: float) -> np.ndarray:
    """Cap each claimed example count at ``ratio`` times the round's (lower) median count.

    A client's example count is its weight in every example-weighted mean, and the server cannot
    check it; the cap bounds what one client can claim by what the others claim (the median is set
    by the honest majority). The median is floored at 1 so that a round of empty clients still has
    a positive cap. ``ratio <= 0`` turns the cap off.

    Example:
        >>> cap_weights([10, 12, 9, 10**15], 10.0).tolist()
        [10.0, 12.0, 9.0, 100.0]
    """
    arr = np.asarray(counts, dtype=np.float64)
    if ratio <= 0 or arr.size == 0:
        return arr
    return np.minimum(arr, ratio * max(1.0, lower_median(arr)))


def weighted_mean_metrics(pairs: Sequence[tuple[float, Metrics]]) -> dict[str, float]:
    """Example-weighted mean of every numeric metric that clients report."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for n, metrics in pairs:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                sums[key] = sums.get(key, 0.0) + n * float(value)
                weights[key] = weights.get(key, 0) + n
    return {k: sums[k] / weights[k] for k in sums if weights[k] > 0}


class Strategy(ABC):
    """Decides who trains with what, and how results combine into the next global model.

    ``local_trainer`` names the client half of the algorithm (a :data:`fedloom.core.trainer.TRAINERS`
    entry) that configured simulations give their clients; ``"auto"`` lets each client follow what
    the task asks for.
    """

    local_trainer: str = "auto"
    max_weight_ratio: float = DEFAULT_MAX_WEIGHT_RATIO
    """Federated evaluation (and FedAvg's aggregation) caps a client's example count at this many times
    the round's median claimed count (:func:`cap_weights`; 0 = no cap)."""

    def initialize(self, parameters: Parameters, *, seed: int = 0) -> ServerState:
        """Create the state for round 0 from initial parameters."""
        return ServerState(parameters=parameters.copy(), rng=np.random.default_rng(seed))

    @abstractmethod
    def configure_fit(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, FitIns]]:
        """Choose the clients for training round ``rnd`` and what each receives."""

    @abstractmethod
    def aggregate_fit(
        self,
        state: ServerState,
        rnd: int,
        results: Sequence[tuple[ClientId, FitRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        """Combine results into ``state.parameters`` (in place); return diagnostics."""

    def result_spec(self, state: ServerState, model_spec: ParamSpec) -> ParamSpec | None:
        """What every fit result of the coming round must match: names, dtypes and shapes.

        The default is the global model's layout (``model_spec``, taken when the run started). A
        strategy whose results have another or a changing layout (tree models that grow, gradient
        histograms) returns ``None``: the round loop then checks only that results are finite and
        well-formed, and the strategy validates their contents in :meth:`aggregate_fit`.
        """
        return model_spec

    def configure_evaluate(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, EvaluateIns]]:
        """Choose clients for federated evaluation (none by default)."""
        return []

    def aggregate_evaluate(
        self,
        state: ServerState,
        rnd: int,
        results: Sequence[tuple[ClientId, EvaluateRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        """Combine client evaluations: example-weighted mean loss and metrics, with the number of
        clients that evaluated (``clients``) and that failed (``failures``).

        Each client's example count is capped at :attr:`max_weight_ratio` times the round's median
        count (:func:`~fedloom.core.strategy.cap_weights`), so one client claiming a huge count cannot set the result.
        """
        out: Metrics = {"clients": len(results), "failures": len(failures)}
        if not results:
            return out
        counts = cap_weights([r.num_examples for _, r in results], self.max_weight_ratio)
        total = float(counts.sum())
        if total == 0:
            return out
        out["loss"] = sum(r.loss * n for (_, r), n in zip(results, counts, strict=True)) / total
        out.update(weighted_mean_metrics([(n, r.metrics) for (_, r), n in zip(results, counts, strict=True)]))
        return out

    def evaluate(self, state: ServerState, rnd: int) -> EvaluateRes | None:
        """Central evaluation of ``state.parameters`` on server-held data (none by default)."""
        return None
