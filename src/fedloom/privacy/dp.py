"""Differential privacy for federated averaging: central (fixed or adaptive clipping) and local.

Papers: H. Brendan McMahan, Daniel Ramage, Kunal Talwar, Li Zhang, "Learning Differentially Private
Recurrent Language Models", ICLR 2018, arXiv:1710.06963 (DP-FedAvg); Galen Andrew, Om Thakkar,
H. Brendan McMahan, Swaroop Ramaswamy, "Differentially Private Learning with Adaptive Clipping",
NeurIPS 2021, arXiv:1905.03871.

:class:`CentralDP` wraps a FedAvg-family strategy. Each round it samples its cohort by Poisson
sampling: every available client independently with probability ``q = m / n`` (``m`` the cohort
the wrapped strategy would sample from ``n`` available clients); it clips every client's delta to
L2 norm ``C``, sums, adds Gaussian noise of std ``z C`` to the sum and divides by the FIXED
expected cohort size ``m`` (not the number of clients that answered, and no example weights): one
client changes the released sum by at most ``C`` (add/remove one client), so the noise is
calibrated to exactly that sensitivity, and Poisson sampling is what the accountant assumes. (An
example-weighted mean has a data-dependent denominator whose sensitivity the noise would not
cover; that is why weights are dropped.) The averaged delta goes through the wrapped strategy's
public :meth:`~fedloom.strategies.FedAvg.apply_update`, so its server optimizer (FedAvgM, FedAdam,
...) still applies. Every released round's ``q`` is appended to the accountant's ledger in the
server state (:func:`~fedloom.privacy.accountant.record_release`).

With adaptive clipping the clip norm follows a target quantile ``gamma`` of the update norms:
``C <- C * exp(-lr * (b - gamma))`` where ``b`` is the noised fraction of *unclipped* updates
(sensitivity 1/2 after centring, noise ``sigma_b``), and the update noise is raised to
``z_delta = (z^-2 - (2 sigma_b)^-2)^-1/2`` so that the pair of releases costs exactly ``z``.
The clip norm, the expected cohort and the sampling rate live in the typed component
``state.components["central_dp"] = CentralDPState(clip, cohort, rate)`` and are checkpointed.

The noise (and the Poisson sampling) comes from the operating system's CSPRNG through
:mod:`fedloom.privacy.noise` (an exact discrete Gaussian on a fine grid), never from the server's
seeded ``state.rng``, which is derived from the run seed and stored in checkpoints: anyone who knows
the seed could replay and subtract it. ``reproducible_noise=True`` draws from ``state.rng``
instead; the run is then reproducible and NOT private.

Under SecAgg+ the server never sees one update: clients clip to the ``dp_clip`` sent with the task,
the secure sum arrives in ``extras["secagg_sum"]`` (with the secure count of unclipped updates),
and the noise is added to that sum (its sensitivity grows by the clients' rounding, at most
``sqrt(d)`` quantization steps).

:class:`LocalDPClient` clips and noises the delta on the client itself (local DP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from fedloom.core.client import Client, ClientWrapper
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure, ServerState, Strategy, too_few_results, weighted_mean_metrics
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes, Metrics
from fedloom.errors import ConfigError, RoundFailedError
from fedloom.privacy.accountant import Budget, ledger_rates, record_release
from fedloom.privacy.noise import SYSTEM, RandomSource, SeededRandom, discrete_gaussian, gaussian_release
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
        cohort: ``m``, the expected number of clients sampled this round (the fixed denominator);
            ``None`` until :meth:`CentralDP.configure_fit` has run.
        rate: ``q``, the probability with which each available client was sampled this round.
        exhausted: This round was skipped (nothing sampled or released): it would exceed the budget.
    """

    clip: float
    cohort: int | None
    rate: float = 1.0
    exhausted: bool = False


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
    source: RandomSource = SYSTEM,
    answered: int | None = None,
) -> tuple[float, float]:
    """One geometric update of the clip norm from a count of unclipped updates.

    The centred count ``sum_i (b_i - 1/2)`` over the ``answered`` clients (sensitivity 1/2) gets
    discrete Gaussian noise of std ``count_stddev`` (drawn in half units, where it is an integer),
    and is divided by the expected ``cohort``.

    Returns:
        The new clip norm and the noised fraction of unclipped updates it was based on.
    """
    answered = cohort if answered is None else answered
    half_units = 2 * round(unclipped) - answered  # 2 * sum(b_i - 1/2): an integer, sensitivity 1
    if count_stddev > 0:
        half_units += int(discrete_gaussian(2.0 * count_stddev, 1, source)[0])
    noisy = half_units / 2 / cohort + 0.5
    return clip * math.exp(-lr * (noisy - target_quantile)), noisy


class CentralDP(Strategy):
    """DP-FedAvg around ``strategy``: Poisson-sampled cohort, clipped updates, Gaussian noise on the sum,
    fixed denominator.

    Args:
        strategy: A :class:`~fedloom.FedAvg` (or subclass); its cohort size (as the expected size
            of the Poisson cohort), instructions, evaluation, ``min_fit_results`` and server
            optimizer (through its public ``apply_update``) are used; its own choice of clients,
            its aggregator and example weights are not.
        noise_multiplier: ``z``: noise std on the sum divided by the clip norm (what is accounted).
        clip: Initial (adaptive) or fixed L2 clip norm ``C``.
        adaptive: Track ``target_quantile`` of the update norms (Andrew et al.).
        target_quantile: ``gamma``, e.g. 0.5 for the median norm.
        clip_lr: Geometric learning rate of the clip norm.
        count_stddev: Noise on the unclipped count; default ``max(m / 20, z)`` (the paper's ``m / 20``,
            raised for small cohorts so that the update keeps most of the budget).
        reproducible_noise: Draw the noise and the sampling from ``state.rng`` (seeded from the
            run seed, checkpointed) instead of the OS CSPRNG: reproducible, and NOT private.
        budget: Checked before each round with the rate it really has (the ledger's rates plus
            this round's): a round that would exceed it is skipped, nothing is released, and the
            round's metrics say so (the epsilon observer then stops the run).

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
        reproducible_noise: bool = False,
        budget: Budget | None = None,
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
        self.reproducible_noise = reproducible_noise
        self.budget = budget
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

    def _source(self, state: ServerState) -> RandomSource:
        """Where the noise and the sampling come from: the OS CSPRNG unless reproducible (not private)."""
        return SeededRandom(state.rng) if self.reproducible_noise else SYSTEM  # insecure-reproducible: opt-in only

    def expected_cohort(self, available: int) -> int:
        """``m``: the cohort the wrapped strategy would sample from ``available`` clients."""
        inner = self.inner
        return min(available, max(inner.min_fit_clients, math.ceil(inner.fraction_fit * available - 1e-9)))

    def _dp_state(self, state: ServerState) -> CentralDPState:
        dp = state.components.get(CENTRAL_DP)
        return CentralDPState(clip=float(self.clip), cohort=None) if dp is None else dp

    def configure_fit(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, FitIns]]:
        """Poisson sampling: each available client with probability ``m / n``, all with the same instructions.

        The wrapped strategy makes the instructions (and its own bookkeeping, e.g. SCAFFOLD's
        population size); its fixed-size choice of clients is replaced by the Poisson cohort.
        """
        clients = list(clients)
        template = self.inner.configure_fit(state, rnd, clients)
        dp = self._dp_state(state)
        if not template:
            state.components[CENTRAL_DP] = dp._replace(cohort=0, rate=0.0, exhausted=False)
            return []
        first = template[0][1]
        if any(ins.config != first.config for _, ins in template):
            raise ConfigError(f"central DP gives every sampled client the same instructions; {self.inner!r} "
                              "configures clients differently")
        cohort = self.expected_cohort(len(clients))
        rate = cohort / len(clients)
        if self.budget is not None and not self.budget.allows([*(ledger_rates(state) or []), rate]):
            state.components[CENTRAL_DP] = dp._replace(cohort=cohort, rate=rate, exhausted=True)
            return []
        if rate >= 1.0:
            chosen = clients
        else:
            draws = self._source(state).uniform(len(clients))
            chosen = [cid for cid, u in zip(clients, draws, strict=True) if u < rate]
        config = {**first.config, CLIP_KEY: float(dp.clip), "secagg_weighted": False}
        state.components[CENTRAL_DP] = dp._replace(cohort=cohort, rate=rate, exhausted=False)
        return [(cid, replace(first, config=dict(config), extras=dict(first.extras))) for cid in chosen]

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
        dp = self._dp_state(state)
        if dp.exhausted:  # skipped before sampling: nothing trained, nothing released, nothing spent
            return {"fit_clients": 0, "fit_failures": len(failures), "dp_budget_exhausted": 1.0}
        clip = float(dp.clip)
        cohort = int(len(results) if dp.cohort is None else dp.cohort)
        secure = _is_secure_sum(results)
        sampled_nobody = not results and not failures  # an empty Poisson cohort: the release is noise alone
        if not sampled_nobody:
            min_results = self.inner.min_fit_results
            if len(results) < min_results and not secure:
                raise too_few_results(rnd, len(results), min_results, failures)
            if not results:
                raise RoundFailedError(f"round {rnd}: no results to aggregate")
        if cohort <= 0:
            raise RoundFailedError(f"round {rnd}: no client was available to sample")
        global_vec = state.parameters.flatten()
        sensitivity = clip
        if secure:
            summed = results[0][1].extras[SECAGG_SUM]
            total, unclipped = summed["sum"].astype(np.float64), float(summed["unclipped"][0])
            answered = int(summed["count"][0])
            # Each client's stochastic rounding may lengthen its vector by sqrt(d) quantization steps.
            step = float(summed["error"][0]) / max(answered, 1) if "error" in summed else 0.0
            sensitivity = clip + math.sqrt(total.size) * step
        else:
            total = np.zeros_like(global_vec, dtype=np.float64)
            unclipped = 0.0
            for _, res in results:
                clipped, within = clip_l2(res.parameters.flatten() - global_vec, clip)
                total += clipped
                unclipped += float(within)
            answered = len(results)
        source = self._source(state)
        count_stddev = self._count_stddev(cohort)
        z_delta = update_noise_multiplier(self.noise_multiplier, count_stddev)
        noisy, noise_std = gaussian_release(total, sensitivity=sensitivity, noise_multiplier=z_delta, source=source)
        self.inner.apply_update(state, rnd, noisy / cohort)
        record_release(state, dp.rate)
        metrics: Metrics = {"fit_clients": answered, "fit_failures": len(failures), "dp_clip": clip,
                            "dp_noise_std": noise_std / cohort, "dp_cohort": cohort}
        if self.adaptive:
            new_clip, frac = adaptive_clip_step(clip, unclipped, cohort, target_quantile=self.target_quantile,
                                                lr=self.clip_lr, count_stddev=count_stddev, source=source,
                                                answered=answered)
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
    """Local DP: the client clips its delta to ``clip`` and adds noise of std ``z * clip`` before upload.

    The noise is the exact discrete Gaussian of :func:`~fedloom.privacy.noise.gaussian_release`,
    drawn from the operating system's CSPRNG, never from the task seed (which the server knows).
    Each upload is a Gaussian mechanism on the client's whole dataset; since the server sees who
    uploads, the neighbouring relation is "replace this client's data", under which the clipped
    delta moves by up to ``2 * clip``: the noise is calibrated (and accounted) as multiplier
    ``z / 2`` on sensitivity ``2 * clip``.

    Args:
        inner: The training client.
        clip: L2 clip norm ``C`` of the delta.
        noise_multiplier: ``z``: noise std divided by ``C``.
        reproducible_noise: Seed the noise from the task seed: reproducible, NOT private (the
            server knows the task seed and can subtract the noise).
    """

    def __init__(self, inner: Client, *, clip: float, noise_multiplier: float,
                 reproducible_noise: bool = False) -> None:
        if not clip > 0 or noise_multiplier < 0:
            raise ConfigError(f"local DP needs clip > 0 and noise_multiplier >= 0, got {clip}, {noise_multiplier}")
        self.inner, self.clip, self.noise_multiplier = inner, clip, noise_multiplier
        self.reproducible_noise = reproducible_noise

    def fit_task(self, ins: FitIns) -> FitRes:
        res = self.inner.fit_task(ins)
        base = ins.parameters.flatten()
        clipped, _ = clip_l2(res.parameters.flatten() - base, self.clip)
        source = (SeededRandom.from_seed(int(ins.config.get("seed", 0)))  # insecure-reproducible: opt-in only
                  if self.reproducible_noise else SYSTEM)
        noisy, _ = gaussian_release(clipped, sensitivity=2 * self.clip, noise_multiplier=self.noise_multiplier / 2,
                                    source=source)
        return FitRes(ins.parameters.unflatten(base + noisy), res.num_examples, dict(res.metrics), dict(res.extras))
