"""Federated Averaging.

Paper: H. Brendan McMahan, Eider Moore, Daniel Ramage, Seth Hampson, Blaise Agüera y Arcas,
"Communication-Efficient Learning of Deep Networks from Decentralized Data", AISTATS 2017,
arXiv:1602.05629.

Each round a fraction of clients trains locally from the global model; the server replaces the
global model by the example-weighted mean of the returned models. Written as
``delta = aggregate(w_i - w)``, ``step, opt_state = server_opt.update(delta, opt_state)``,
``w <- w + step`` so that the combination (``aggregator``) and the server optimizer
(``server_opt``, a :class:`~fedloom.core.server_opt.ServerOpt`: pure ``init``/``update`` functions
over typed state, after optax) are separate parts that compose: robust aggregators replace the
first, server optimizers (:mod:`fedloom.strategies.server_opts`: ``sgd``, ``momentum``, ``adam``,
...) the second. The default ``sgd(1.0)`` adds ``delta`` exactly, which is plain FedAvg. The
optimizer state lives in ``state.components["server_opt"]``, so checkpoints carry it. FedAvgM,
FedAdagrad, FedAdam and FedYogi are FedAvg with a preset ``server_opt``.

Example:
    >>> strategy = FedAvg(fraction_fit=0.5, min_fit_clients=2)
    >>> from fedloom.strategies.server_opts import adam
    >>> with_adam = FedAvg(server_opt=adam(lr=0.01), fraction_fit=0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.results import call_evaluate_fn
from fedloom.core.sampling import SAMPLING_SCHEMES, sample_cohort
from fedloom.core.server_opt import ServerOpt, apply_step
from fedloom.core.strategy import (
    DEFAULT_MAX_WEIGHT_RATIO,
    Failure,
    ServerState,
    Strategy,
    cap_weights,
    lower_median,
    sample_clients,
    too_few_results,
    weighted_mean_metrics,
)
from fedloom.core.types import ClientId, Config, EvaluateIns, EvaluateRes, FitIns, FitRes, Metrics
from fedloom.errors import ConfigError
from fedloom.strategies.aggregators import Aggregator, WeightedMean
from fedloom.strategies.registry import STRATEGIES
from fedloom.strategies.server_opts import sgd

if TYPE_CHECKING:
    from fedloom.strategies.options import StrategyOptions

__all__ = ["FedAvg", "CentralEvaluateFn", "MetricsAggregationFn", "SERVER_OPT", "DEFAULT_MAX_NORM_RATIO",
           "bound_update_norms"]

DEFAULT_MAX_NORM_RATIO = 10.0
"""Default bound on one client's update: this many times the round's median update norm."""

SERVER_OPT = "server_opt"
"""``ServerState.components`` key of the server optimizer's state."""

CentralEvaluateFn = Callable[..., Any]
"""Evaluate global parameters on server-held data: ``fn(server_round, parameters)`` or the older
``fn(parameters)`` (told apart by signature), returning an :class:`EvaluateRes`, a dict of metrics
(with an optional ``"loss"``), a tuple ``(loss, metrics)`` or ``None``
(:func:`fedloom.core.results.call_evaluate_fn`)."""

MetricsAggregationFn = Callable[[list[tuple[int, Metrics]]], Metrics]
"""``[(num_examples, metrics), ...] -> metrics``: how clients' metrics combine (Flower's
``fit_metrics_aggregation_fn``/``evaluate_metrics_aggregation_fn``)."""


class FedAvg(Strategy):
    """Federated Averaging with client sampling, federated and central evaluation.

    Args:
        fraction_fit: Fraction of available clients sampled for training each round.
        min_fit_clients: Minimum clients sampled for training (and needed to start a round).
        min_fit_results: Minimum valid results needed to aggregate; fewer fails the round. Public
            and settable (:attr:`min_fit_results`; a deployment sets it from its server config).
        fraction_evaluate: Fraction of clients sampled for federated evaluation each evaluated round
            (default 1.0, as in Flower; 0 disables it).
        min_evaluate_clients: Minimum clients for federated evaluation, when enabled.
        weighted: Weight clients by their number of training examples (``False``: equal weights,
            ``--weighting uniform``).
        sampling: How the training cohort is drawn (:mod:`fedloom.core.sampling`): ``"uniform"``
            (``K`` distinct clients, the default), ``"size"`` (``K`` draws with replacement, client
            ``k`` with probability ``n_k / n``, FedProx's Algorithm 2; needs
            :attr:`assigned_examples`; a client drawn ``m`` times trains once and its weight is
            multiplied by ``m``) or ``"poisson"`` (each client with probability ``fraction_fit``;
            an empty cohort leaves the round's model unchanged).
        aggregator: How updates combine; defaults to :class:`WeightedMean`.
        fit_config: Config sent to every training client (e.g. ``{"local_epochs": 1}``).
        fit_config_fn: Optional ``rnd -> Config`` merged over ``fit_config`` each round (Flower's
            ``on_fit_config_fn``).
        evaluate_config: Config sent to every evaluating client.
        evaluate_config_fn: Optional ``rnd -> Config`` merged over ``evaluate_config`` each
            evaluated round (Flower's ``on_evaluate_config_fn``).
        evaluate_fn: Optional central evaluation on server-held data (:data:`CentralEvaluateFn`):
            ``fn(server_round, parameters)`` or ``fn(parameters)``, returning an ``EvaluateRes``,
            a dict of metrics (numbers or strings, an optional ``"loss"``) or ``None``. The round
            loop also calls it with round 0, on the initial model.
        fit_metrics_aggregation_fn: Optional :data:`MetricsAggregationFn` combining the clients' fit
            metrics (default: the example-weighted mean of the numeric ones).
        evaluate_metrics_aggregation_fn: The same for federated-evaluation metrics.
        server_opt: How the aggregated update moves the global model; defaults to
            :func:`~fedloom.strategies.server_opts.sgd` with ``lr=1.0`` (plain FedAvg).
        max_weight_ratio: Cap on the example count (the weight) one client may claim: this many
            times the round's median claimed count (:func:`~fedloom.core.strategy.cap_weights`).
            A client whose count the server knows (:attr:`assigned_examples`) is capped at that
            count instead. ``0`` turns both off.
        max_norm_ratio: Bound on one client's update: an update longer than this many times the
            round's median update norm is scaled down to it before aggregating
            (:func:`bound_update_norms`); ``0`` turns it off.
        assigned_examples: The example count of each client, when the server knows it (a
            simulation knows the split it gave each client): a claim above it is cut to it.

    Attributes:
        min_fit_results: Minimum valid results :meth:`aggregate_fit` needs (wrappers such as
            :class:`~fedloom.privacy.CentralDP` read it too).
        server_opt: The server optimizer (:class:`~fedloom.core.server_opt.ServerOpt`).
        max_weight_ratio, max_norm_ratio, assigned_examples: As the arguments; settable.
    """
    local_trainer = "epochs"  # the client half of the algorithm: a name in fedloom.core.trainer.TRAINERS

    def __init__(
        self,
        *,
        fraction_fit: float = 1.0,
        min_fit_clients: int = 1,
        min_fit_results: int = 1,
        fraction_evaluate: float = 1.0,
        min_evaluate_clients: int = 1,
        weighted: bool = True,
        aggregator: Aggregator | None = None,
        fit_config: Config | None = None,
        fit_config_fn: Callable[[int], Config] | None = None,
        evaluate_fn: CentralEvaluateFn | None = None,
        evaluate_config: Config | None = None,
        evaluate_config_fn: Callable[[int], Config] | None = None,
        fit_metrics_aggregation_fn: MetricsAggregationFn | None = None,
        evaluate_metrics_aggregation_fn: MetricsAggregationFn | None = None,
        server_opt: ServerOpt | None = None,
        max_weight_ratio: float = DEFAULT_MAX_WEIGHT_RATIO,
        max_norm_ratio: float = DEFAULT_MAX_NORM_RATIO,
        assigned_examples: Mapping[ClientId, int] | None = None,
        sampling: str = "uniform",
    ) -> None:
        if not 0.0 < fraction_fit <= 1.0:
            raise ConfigError(f"fraction_fit must be in (0, 1], got {fraction_fit}")
        if not 0.0 <= fraction_evaluate <= 1.0:
            raise ConfigError(f"fraction_evaluate must be in [0, 1], got {fraction_evaluate}")
        if min_fit_clients < 1 or min_fit_results < 1:
            raise ConfigError("min_fit_clients and min_fit_results must be >= 1")
        if not (max_weight_ratio == 0 or max_weight_ratio >= 1):
            raise ConfigError(f"max_weight_ratio must be 0 (no cap) or >= 1, got {max_weight_ratio}")
        if not (max_norm_ratio == 0 or max_norm_ratio >= 1):
            raise ConfigError(f"max_norm_ratio must be 0 (no bound) or >= 1, got {max_norm_ratio}")
        if sampling not in SAMPLING_SCHEMES:
            raise ConfigError(f"sampling must be one of {', '.join(SAMPLING_SCHEMES)}, got {sampling!r}")
        if server_opt is not None and not isinstance(server_opt, ServerOpt):
            raise ConfigError(f"server_opt must be a ServerOpt (e.g. fedloom.strategies.adam()), got {server_opt!r}")
        self.fraction_fit = fraction_fit
        self.min_fit_clients = min_fit_clients
        self.min_fit_results = min_fit_results
        self.fraction_evaluate = fraction_evaluate
        self.min_evaluate_clients = min_evaluate_clients
        self.weighted = weighted
        self.sampling = sampling
        self._draws: dict[int, dict[ClientId, int]] = {}  # round -> draws per client (size sampling)
        self.aggregator: Aggregator = aggregator if aggregator is not None else WeightedMean()
        self.fit_config: Config = dict(fit_config or {})
        self.fit_config_fn = fit_config_fn
        self.evaluate_fn = evaluate_fn
        self.evaluate_config: Config = dict(evaluate_config or {})
        self.evaluate_config_fn = evaluate_config_fn
        self.fit_metrics_aggregation_fn = fit_metrics_aggregation_fn
        self.evaluate_metrics_aggregation_fn = evaluate_metrics_aggregation_fn
        self.server_opt: ServerOpt = server_opt if server_opt is not None else sgd(1.0)
        self.max_weight_ratio = float(max_weight_ratio)
        self.max_norm_ratio = float(max_norm_ratio)
        self.assigned_examples: dict[ClientId, int] | None = (
            None if assigned_examples is None else dict(assigned_examples))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(fraction_fit={self.fraction_fit}, weighted={self.weighted}, "
            f"aggregator={self.aggregator!r}{_sampling_repr(self)})"
        )

    def initialize(self, parameters: Parameters, *, seed: int = 0) -> ServerState:
        """The round-0 state, with the server optimizer's initial state in ``components``."""
        state = super().initialize(parameters, seed=seed)
        state.components[SERVER_OPT] = self.server_opt.init(state.parameters.flatten())
        return state

    # -- training ------------------------------------------------------------------------
    def round_fit_config(self, state: ServerState, rnd: int) -> Config:
        """The config every training client gets in round ``rnd``; subclasses add their keys."""
        config = dict(self.fit_config)
        if self.fit_config_fn is not None:
            config.update(self.fit_config_fn(rnd))
        return config

    def configure_fit(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, FitIns]]:
        chosen = self.sample_fit_clients(state, rnd, clients)
        config = self.round_fit_config(state, rnd)
        return [(cid, FitIns(state.parameters, dict(config))) for cid in chosen]

    def sample_fit_clients(self, state: ServerState, rnd: int, clients: Sequence[ClientId]) -> list[ClientId]:
        """The round's training cohort by :attr:`sampling` (distinct clients; the number of draws of
        each, for ``size`` sampling, is kept for :meth:`draws` until the round is aggregated)."""
        if self.sampling == "uniform":  # exactly the sampler (and RNG use) of earlier releases
            self._draws.pop(rnd, None)
            return sample_clients(state.rng, clients, self.fraction_fit, self.min_fit_clients)
        cohort = sample_cohort(state.rng, clients, scheme=self.sampling, fraction=self.fraction_fit,
                               min_clients=self.min_fit_clients, sizes=self.assigned_examples)
        self._draws = {rnd: cohort.multiplicity()}  # only the current round's
        return cohort.clients

    def draws(self, rnd: int) -> dict[ClientId, int]:
        """How many times each client sampled in round ``rnd`` was drawn: empty unless ``size`` or
        ``poisson`` sampling ran for that round (a client not listed was drawn once)."""
        return dict(self._draws.get(rnd, {}))

    def example_counts(self, results: Sequence[tuple[ClientId, FitRes]]) -> np.ndarray:
        """The example counts the server accepts: each claim cut to the client's assigned count when
        the server knows it, else capped at ``max_weight_ratio`` times the round's median claim
        (``max_weight_ratio = 0``: the claims as they are)."""
        claimed = np.array([float(r.num_examples) for _, r in results], dtype=np.float64)
        if self.max_weight_ratio <= 0:
            return claimed
        known = self.assigned_examples or {}
        unknown = np.array([cid not in known for cid, _ in results], dtype=bool)
        counts = claimed.copy()
        if unknown.any():
            counts[unknown] = cap_weights(claimed, self.max_weight_ratio)[unknown]
        for i, (cid, _) in enumerate(results):
            if cid in known:
                counts[i] = min(claimed[i], float(known[cid]))
        return counts

    def client_weights(self, results: Sequence[tuple[ClientId, FitRes]], rnd: int | None = None) -> np.ndarray:
        """Aggregation weights: the accepted example counts (:meth:`example_counts`), or ones when
        unweighted; times the number of draws of each client in round ``rnd`` (``size`` sampling)."""
        weights = self.example_counts(results) if self.weighted else np.ones(len(results))
        counts = self._draws.get(rnd, {}) if rnd is not None else {}
        if counts:
            weights = weights * np.array([float(counts.get(cid, 1)) for cid, _ in results])
        return weights

    def aggregate_fit(
        self,
        state: ServerState,
        rnd: int,
        results: Sequence[tuple[ClientId, FitRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        if self.sampling == "poisson" and not results and not failures:
            return {"fit_clients": 0, "fit_failures": 0}  # an empty Poisson cohort: nothing to aggregate
        if len(results) < self.min_fit_results:
            raise too_few_results(rnd, len(results), self.min_fit_results, failures)
        global_vec = state.parameters.flatten()
        updates, bounded = bound_update_norms(update_rows([r.parameters for _, r in results], global_vec),
                                              self.max_norm_ratio)
        delta = self.aggregator(updates, self.client_weights(results, rnd))
        self.apply_update(state, rnd, delta)
        metrics: Metrics = {"fit_clients": len(results), "fit_failures": len(failures)}
        if bounded:
            metrics["fit_norm_bounded"] = bounded
        counts = self.example_counts(results)
        pairs = [(n, r.metrics) for n, (_, r) in zip(counts, results, strict=True)]
        if self.fit_metrics_aggregation_fn is not None:
            metrics.update(self.fit_metrics_aggregation_fn([(int(n), dict(m)) for n, m in pairs]))
        else:
            metrics.update(weighted_mean_metrics(pairs))
        return metrics

    def apply_update(self, state: ServerState, rnd: int, delta: np.ndarray) -> None:
        """Move the global model by an already aggregated update, through the server optimizer.

        ``step, opt_state = server_opt.update(delta, opt_state)``, then ``w <- w + step``; the new
        optimizer state replaces ``state.components["server_opt"]``. :meth:`aggregate_fit` calls
        it; so do wrappers that aggregate themselves (:class:`~fedloom.privacy.CentralDP`).

        Args:
            state: The server state; its parameters and optimizer state are replaced.
            rnd: The round being aggregated.
            delta: The aggregated update (flat, in the order of ``state.parameters.flatten()``).
        """
        opt_state = state.components.get(SERVER_OPT)
        if opt_state is None:  # a state not made by initialize(): start the optimizer now
            opt_state = self.server_opt.init(state.parameters.flatten())
        step, state.components[SERVER_OPT] = self.server_opt.update(delta, opt_state)
        apply_step(state, step)

    # -- evaluation ----------------------------------------------------------------------
    def configure_evaluate(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, EvaluateIns]]:
        if self.fraction_evaluate <= 0.0 or not clients:
            return []
        k = min(self.min_evaluate_clients, len(clients))
        chosen = sample_clients(state.rng, clients, self.fraction_evaluate, k)
        config = self.round_evaluate_config(state, rnd)
        return [(cid, EvaluateIns(state.parameters, dict(config))) for cid in chosen]

    def round_evaluate_config(self, state: ServerState, rnd: int) -> Config:
        """The config every evaluating client gets in round ``rnd``: ``evaluate_config``, then
        ``evaluate_config_fn(rnd)`` over it."""
        config = dict(self.evaluate_config)
        if self.evaluate_config_fn is not None:
            config.update(self.evaluate_config_fn(rnd))
        return config

    def aggregate_evaluate(
        self,
        state: ServerState,
        rnd: int,
        results: Sequence[tuple[ClientId, EvaluateRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        """The base combination (weighted mean loss and metrics, client and failure counts), with the
        metrics combined by ``evaluate_metrics_aggregation_fn`` when one is given."""
        out = super().aggregate_evaluate(state, rnd, results, failures)
        if self.evaluate_metrics_aggregation_fn is not None and results:
            pairs = [(int(n), dict(r.metrics)) for (_, r), n in
                     zip(results, cap_weights([r.num_examples for _, r in results], self.max_weight_ratio),
                         strict=True)]
            keep: Metrics = {k: out[k] for k in ("clients", "failures", "loss") if k in out}
            out = {**keep, **self.evaluate_metrics_aggregation_fn(pairs)}
        return out

    def evaluate(self, state: ServerState, rnd: int) -> EvaluateRes | None:
        """Central evaluation through ``evaluate_fn`` (either form; see :data:`CentralEvaluateFn`)."""
        if self.evaluate_fn is None:
            return None
        return call_evaluate_fn(self.evaluate_fn, rnd, state.parameters)


def bound_update_norms(updates: Sequence[np.ndarray], ratio: float) -> tuple[list[np.ndarray], int]:
    """Scale every update longer than ``ratio`` times the round's (lower) median update norm down to
    that length; returns the updates and how many were scaled. ``ratio <= 0`` changes nothing.

    The bound follows the honest majority's scale, so it needs no tuning per model, and an update of
    ``3e38`` everywhere counts as no more than ``ratio`` typical ones. Norms are computed in float64
    (scaled by the largest entry first, so that no square overflows). When the median norm is 0 (most
    clients did not move) nothing is scaled.

    Example:
        >>> out, n = bound_update_norms([np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.array([3e38, 0.0])], 10.0)
        >>> n, out[2].tolist()
        (1, [20.0, 0.0])
    """
    if ratio <= 0 or not updates:
        return list(updates), 0
    # Plain norms first (one pass, no copies); the overflow-safe norm only where it decides something:
    # for the median client and for the updates near or above the bound.
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing square is handled below
        fast = np.array([math.sqrt(float(np.dot(u, u))) for u in updates])
    order = np.argsort(fast, kind="stable")
    median_norm = _l2(updates[int(order[(len(updates) - 1) // 2])]) if np.isfinite(fast).all() else lower_median(
        [_l2(u) for u in updates])
    bound = ratio * median_norm
    if not bound > 0:  # most clients did not move: there is no scale to bound the others by
        return list(updates), 0
    out, bounded = [], 0
    for u, quick in zip(updates, fast, strict=True):
        if quick > bound * (1 - 1e-9) or not math.isfinite(quick):
            norm = _l2(u)
            if norm > bound:
                bounded += 1
                peak = float(np.max(np.abs(u)))
                u = (u / peak) * (bound / (norm / peak))
        out.append(u)
    return out, bounded


def _sampling_repr(strategy: FedAvg) -> str:
    return "" if strategy.sampling == "uniform" else f", sampling={strategy.sampling!r}"


def update_rows(results: Sequence[Parameters], global_vec: np.ndarray) -> list[np.ndarray]:
    """Each result minus the global model, flat in float64: the same numbers as
    ``p.flatten() - global_vec``, written once into one matrix (no per-client temporaries)."""
    rows = np.empty((len(results), global_vec.size), dtype=np.float64)
    for i, params in enumerate(results):
        offset = 0
        for arr in params.values():
            size = arr.size
            np.subtract(arr.reshape(-1), global_vec[offset : offset + size], out=rows[i, offset : offset + size])
            offset += size
    return list(rows)


def _l2(u: np.ndarray) -> float:
    peak = float(np.max(np.abs(u))) if u.size else 0.0
    if peak == 0.0 or not np.isfinite(peak):
        return peak
    return peak * float(np.linalg.norm(u / peak))


@STRATEGIES.register("fedavg", help="Federated Averaging (McMahan et al. 2017).")
def _build_fedavg(options: StrategyOptions, common: dict) -> FedAvg:
    return FedAvg(**common)
