"""Differential privacy for federated averaging: central (fixed or adaptive clipping) and local.

Papers: H. Brendan McMahan, Daniel Ramage, Kunal Talwar, Li Zhang, "Learning Differentially Private
Recurrent Language Models", ICLR 2018, arXiv:1710.06963 (DP-FedAvg); Galen Andrew, Om Thakkar,
H. Brendan McMahan, Swaroop Ramaswamy, "Differentially Private Learning with Adaptive Clipping",
NeurIPS 2021, arXiv:1905.03871.

:class:`CentralDP` wraps a FedAvg-family strategy. Each round it clips every client's delta to L2
norm ``C``, sums, adds Gaussian noise ``N(0, (z C)^2)`` to the sum and divides by the FIXED
cohort size ``m`` (the number of clients sampled, not the number that answered, and no example
weights): one client changes the released sum by at most ``C``, so the noise is calibrated to
exactly that sensitivity. (An example-weighted mean has a data-dependent denominator whose
sensitivity the noise would not cover; that is why weights are dropped.) The averaged delta goes
through the wrapped strategy's public :meth:`~fedloom.strategies.FedAvg.apply_update`, so its
server optimizer (FedAvgM, FedAdam, ...) still applies.

With adaptive clipping the clip norm follows a target quantile ``gamma`` of the update norms:
``C <- C * exp(-lr * (b - gamma))`` where ``b`` is the noised fraction of *unclipped* updates
(sensitivity 1/2 after centring, noise ``sigma_b``), and the update noise is raised to
``z_delta = (z^-2 - (2 sigma_b)^-2)^-1/2`` so that the pair of releases costs exactly ``z``.
The clip norm and the cohort size live in the typed component
``state.components["central_dp"] = CentralDPState(clip, cohort)`` and are checkpointed.

Under SecAgg+ the server never sees one update: clients clip to the ``dp_clip`` sent with the task,
the secure sum arrives in ``extras["secagg_sum"]`` (with the secure count of unclipped updates),
and the noise is added to that sum.

:class:`LocalDPClient` clips and noises the delta on the client itself (local DP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from fedloom.core.client import Client, ClientWrapper
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure, ServerState, Strategy, weighted_mean_metrics
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes, Metrics
from fedloom.errors import ConfigError, RoundFailedError
from fedloom.privacy.secagg.quantize import clip_l2
from fedloom.privacy.secagg.server import SECAGG_SUM
from fedloom.strategies.fedavg import FedAvg

__all__ = ["CentralDP", "CentralDPState", "LocalDPClient", "adaptive_clip_step", "update_noise_multiplier"]

CLIP_KEY = "dp_clip"
"""Task-config key of the clip norm (what SecAgg+ clients clip to)."""
CENTRAL_DP = "central_dp"
"""``ServerState.components`` key of the :class:`CentralDPState`."""


class CentralDPState(NamedTuple):
    """Central DP's server state, in ``state.components["central_dp"]``.

    Attributes:
        clip: The current L2 clip norm ``C`` (fixed, or moved by adaptive clipping).
        cohort: ``m``, the number of clients sampled this round (the fixed denominator); ``None``
            until :meth:`CentralDP.configure_fit` has run.
    """

    clip: float
    cohort: int | None


def update_noise_multiplier(noise_multiplier: float, count_stddev: float) -> float:
    """Noise multiplier left for the update when ``count_stddev`` goes to the unclipped count."""
    if count_stddev <= 0 or noise_multiplier == 0:
        return noise_multiplier
    rest = noise_multiplier ** -2 - (2 * count_stddev) ** -2
    if rest <= 0:
        raise ConfigError(
            f"adaptive clipping with count noise {count_stddev} leaves no budget for the update: the noise "
            f"multiplier {noise_multiplier} must be below 2 * count_stddev = {2 * count_stddev}"
        )
    return rest ** -0.5


def adaptive_clip_step(
    clip: float,
    unclipped: float,
    cohort: int,
    *,
    target_quantile: float,
    lr: float,
    count_stddev: float,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """One geometric update of the clip norm from a count of unclipped updates.

    Returns the new clip norm and the noised fraction of unclipped updates it was based on.
    """
    noisy = (unclipped - cohort / 2 + rng.normal(0.0, count_stddev)) / cohort + 0.5
    return clip * math.exp(-lr * (noisy - target_quantile)), noisy


class CentralDP(Strategy):
    """DP-FedAvg around ``strategy``: clipped updates, Gaussian noise on the sum, fixed denominator.

    Args:
        strategy: A :class:`~fedloom.FedAvg` (or subclass); its sampling, config, evaluation,
            ``min_fit_results`` and server optimizer (through its public ``apply_update``) are
            used; its aggregator and example weights are not.
        noise_multiplier: ``z``: noise std on the sum divided by the clip norm (what is accounted).
        clip: Initial (adaptive) or fixed L2 clip norm ``C``.
        adaptive: Track ``target_quantile`` of the update norms (Andrew et al.).
        target_quantile: ``gamma``, e.g. 0.5 for the median norm.
        clip_lr: Geometric learning rate of the clip norm.
        count_stddev: Noise on the unclipped count; default ``max(m / 20, z)`` (the paper's ``m / 20``,
            raised for small cohorts so that the update keeps most of the budget).

    Example:
        >>> dp = CentralDP(FedAvg(fraction_fit=0.1), noise_multiplier=1.0, clip=0.5)
    """

    def __init__(
        self,
        strategy: FedAvg,
        *,
        noise_multiplier: float,
        clip: float,
        adaptive: bool = False,
        target_quantile: float = 0.5,
        clip_lr: float = 0.2,
        count_stddev: float | None = None,
    ) -> None:
        if not isinstance(strategy, FedAvg):
            raise ConfigError(f"central DP wraps FedAvg-family strategies, not {type(strategy).__name__}")
        if noise_multiplier < 0 or not clip > 0:
            raise ConfigError(f"need noise_multiplier >= 0 and clip > 0, got {noise_multiplier} and {clip}")
        if not 0 < target_quantile < 1:
            raise ConfigError(f"adaptive quantile must be in (0, 1), got {target_quantile}")
        self.inner = strategy
        self.noise_multiplier = noise_multiplier
        self.clip = clip
        self.adaptive = adaptive
        self.target_quantile = target_quantile
        self.clip_lr = clip_lr
        self.count_stddev = count_stddev
        self.local_trainer = self.inner.local_trainer  # central DP changes only the server side

    def __repr__(self) -> str:
        return f"CentralDP({self.inner!r}, z={self.noise_multiplier}, clip={self.clip}, adaptive={self.adaptive})"

    @property
    def min_fit_results(self) -> int:
        """Valid results a round needs: the wrapped strategy's (set through its constructor)."""
        return self.inner.min_fit_results

    def initialize(self, parameters: Parameters, *, seed: int = 0) -> ServerState:
        state = self.inner.initialize(parameters, seed=seed)
        state.components[CENTRAL_DP] = CentralDPState(clip=float(self.clip), cohort=None)
        return state

    def _dp_state(self, state: ServerState) -> CentralDPState:
        dp = state.components.get(CENTRAL_DP)
        return CentralDPState(clip=float(self.clip), cohort=None) if dp is None else dp

    def configure_fit(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, FitIns]]:
        tasks = self.inner.configure_fit(state, rnd, clients)
        dp = self._dp_state(state)
        clip = float(dp.clip)
        for _, ins in tasks:
            ins.config = {**ins.config, CLIP_KEY: clip, "secagg_weighted": False}
        state.components[CENTRAL_DP] = dp._replace(cohort=len(tasks))
        return tasks

    def _count_stddev(self, cohort: int) -> float:
        if not self.adaptive:
            return 0.0
        if self.count_stddev is not None:
            return self.count_stddev
        # The paper's m/20, but never below z: small cohorts would otherwise leave no update budget
        # (z_delta = z / sqrt(3/4) at the floor, i.e. 15% more update noise).
        return max(cohort / 20.0, self.noise_multiplier)

    def aggregate_fit(
        self,
        state: ServerState,
        rnd: int,
        results: Sequence[tuple[ClientId, FitRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        min_results = self.inner.min_fit_results
        if len(results) < min_results and not _is_secure_sum(results):
            raise RoundFailedError(f"round {rnd}: {len(results)} valid results, {min_results} needed")
        if not results:
            raise RoundFailedError(f"round {rnd}: no results to aggregate")
        dp = self._dp_state(state)
        clip = float(dp.clip)
        cohort = int(len(results) if dp.cohort is None else dp.cohort)
        if _is_secure_sum(results):
            summed = results[0][1].extras[SECAGG_SUM]
            total, unclipped = summed["sum"].astype(np.float64), float(summed["unclipped"][0])
            answered = int(summed["count"][0])
        else:
            global_vec = state.parameters.flatten()
            total = np.zeros_like(global_vec)
            unclipped = 0.0
            for _, res in results:
                clipped, within = clip_l2(res.parameters.flatten() - global_vec, clip)
                total += clipped
                unclipped += float(within)
            answered = len(results)
        count_stddev = self._count_stddev(cohort)
        z_delta = update_noise_multiplier(self.noise_multiplier, count_stddev)
        noise_std = z_delta * clip
        noisy = total + state.rng.normal(0.0, noise_std, size=total.shape) if noise_std > 0 else total
        self.inner.apply_update(state, rnd, noisy / cohort)
        metrics: Metrics = {"fit_clients": answered, "fit_failures": len(failures), "dp_clip": clip,
                            "dp_noise_std": noise_std / cohort}
        if self.adaptive:
            new_clip, frac = adaptive_clip_step(clip, unclipped, cohort, target_quantile=self.target_quantile,
                                                lr=self.clip_lr, count_stddev=count_stddev, rng=state.rng)
            state.components[CENTRAL_DP] = dp._replace(clip=new_clip)
            metrics["dp_unclipped"] = frac
        metrics.update(weighted_mean_metrics([(r.num_examples, r.metrics) for _, r in results]))
        return metrics

    # -- everything else is the wrapped strategy's ---------------------------------------
    def configure_evaluate(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, EvaluateIns]]:
        return self.inner.configure_evaluate(state, rnd, clients)

    def aggregate_evaluate(
        self, state: ServerState, rnd: int, results: Sequence[tuple[ClientId, EvaluateRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        return self.inner.aggregate_evaluate(state, rnd, results, failures)

    def evaluate(self, state: ServerState, rnd: int) -> EvaluateRes | None:
        return self.inner.evaluate(state, rnd)


def _is_secure_sum(results: Sequence[tuple[ClientId, FitRes]]) -> bool:
    return len(results) == 1 and SECAGG_SUM in results[0][1].extras


class LocalDPClient(ClientWrapper):
    """Local DP: the client clips its delta to ``clip`` and adds ``N(0, (z clip)^2)`` before upload.

    The noise comes from a generator seeded by the operating system, never from the task seed
    (which the server knows). Each upload is a Gaussian mechanism on the client's whole dataset.
    """

    def __init__(self, inner: Client, *, clip: float, noise_multiplier: float) -> None:
        if not clip > 0 or noise_multiplier < 0:
            raise ConfigError(f"local DP needs clip > 0 and noise_multiplier >= 0, got {clip}, {noise_multiplier}")
        self.inner, self.clip, self.noise_multiplier = inner, clip, noise_multiplier
        self._rng = np.random.default_rng()

    def fit_task(self, ins: FitIns) -> FitRes:
        res = self.inner.fit_task(ins)
        base = ins.parameters.flatten()
        clipped, _ = clip_l2(res.parameters.flatten() - base, self.clip)
        noisy = clipped + self._rng.normal(0.0, self.noise_multiplier * self.clip, size=clipped.shape)
        return FitRes(ins.parameters.unflatten(base + noisy), res.num_examples, dict(res.metrics), dict(res.extras))
