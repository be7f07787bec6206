"""The privacy ledger: (epsilon, delta) spent by repeated, subsampled Gaussian mechanisms.

Accounting is delegated to well-kept libraries, never re-derived here:

* ``rdp``: Rényi DP (Mironov, "Rényi Differential Privacy", CSF 2017, arXiv:1702.07476) of the
  Poisson-subsampled Gaussian mechanism (Mironov, Talwar, Zhang, arXiv:1908.10530), from Google's
  ``dp-accounting``.
* ``pld``: privacy loss distributions (Koskela et al., AISTATS 2020, arXiv:1906.03049; Doroshenko
  et al., PETS 2022, arXiv:2207.04380), from ``dp-accounting``; tighter than RDP.
* ``prv``: privacy random variables (Gopi, Lee, Wutschitz, NeurIPS 2021, arXiv:2106.02848), from
  Opacus.

A federated round is one step of a subsampled Gaussian mechanism with sampling rate ``q`` and
noise multiplier ``z`` (noise std / L2 sensitivity), as in DP-FedAvg (McMahan et al., ICLR 2018).
Rounds are accounted one by one, with the rate that really happened: central DP samples its cohort
by Poisson sampling (each available client with probability ``q_r``) and writes ``q_r`` of every
released round into the :data:`LEDGER` buffer of the server state (so it is checkpointed and a
resumed run keeps its history); :class:`EpsilonObserver` composes those rounds (runs of equal rates
as one self-composed event, heterogeneous runs composed, as dp-accounting allows). The neighbouring
relation is add/remove one client (Poisson sampling, sensitivity ``C``); local DP, which the server
sees client by client, is charged every round in full with sensitivity ``2C`` (replace one client's
data), i.e. at noise multiplier ``z / 2`` (see ``docs/privacy.md``).

Example:
    >>> round(epsilon(noise_multiplier=1.0, sampling_rate=0.01, steps=1000, delta=1e-5), 2)
    2.1
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.engine.loop import RoundRecord
from fedloom.errors import ConfigError, StopTraining
from fedloom.privacy.registry import ACCOUNTANTS

if TYPE_CHECKING:  # dp-accounting takes about a second to import: loaded when an epsilon is computed
    import dp_accounting

__all__ = ["ACCOUNTANTS", "EXHAUSTED", "LEDGER", "Budget", "EpsilonObserver", "epsilon", "epsilon_of_schedule",
           "ledger_rates", "max_rounds", "noise_for_epsilon", "record_release"]

Schedule = tuple[tuple[float, int], ...]
"""Runs of rounds: ``((sampling_rate, rounds), ...)`` in order."""

LEDGER = "dp_ledger"
"""``ServerState.buffers`` key of the per-round record of released rounds (``sampling_rate``)."""
EXHAUSTED = "train_dp_budget_exhausted"
"""Round metric set when central DP skipped a round because releasing it would exceed the budget."""


def _step(noise_multiplier: float, sampling_rate: float) -> dp_accounting.DpEvent:
    import dp_accounting

    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    return gaussian if sampling_rate >= 1.0 else dp_accounting.PoissonSampledDpEvent(sampling_rate, gaussian)


def _event(noise_multiplier: float, schedule: Schedule) -> dp_accounting.DpEvent:
    import dp_accounting

    runs = [dp_accounting.SelfComposedDpEvent(_step(noise_multiplier, q), steps) for q, steps in schedule if steps]
    return runs[0] if len(runs) == 1 else dp_accounting.ComposedDpEvent(runs)


# The library's default orders minus those below 2: for large sampling rates its series for
# fractional orders in (1, 2) fails to converge (it logs and drops them); they are never the
# optimum at the budgets of interest.
_RDP_ORDERS = [2 + x / 10.0 for x in range(90)] + list(range(12, 64)) + [128, 256, 512, 1024]
# Integer orders only: several times faster, and never below the epsilon of the full set (a minimum
# over fewer orders), so a noise multiplier calibrated with them is safe for every accountant here.
_FAST_ORDERS = list(range(2, 64)) + [128, 256, 512, 1024]


@ACCOUNTANTS.register("rdp", help="Renyi DP of the subsampled Gaussian (dp-accounting).")
def _rdp_epsilon(noise_multiplier: float, schedule: Schedule, delta: float) -> float:
    import dp_accounting

    acc = dp_accounting.rdp.RdpAccountant(_RDP_ORDERS)
    acc.compose(_event(noise_multiplier, schedule))
    return float(acc.get_epsilon(delta))


@ACCOUNTANTS.register("pld", help="Privacy loss distributions (dp-accounting): tighter, slower.")
def _pld_epsilon(noise_multiplier: float, schedule: Schedule, delta: float) -> float:
    import dp_accounting

    acc = dp_accounting.pld.PLDAccountant()
    acc.compose(_event(noise_multiplier, schedule))
    return float(acc.get_epsilon(delta))


@ACCOUNTANTS.register("prv", help="Privacy random variables (Opacus' PRV accountant).")
def _prv_epsilon(noise_multiplier: float, schedule: Schedule, delta: float) -> float:
    from opacus.accountants import PRVAccountant

    prv = PRVAccountant()
    prv.history = [(noise_multiplier, q, steps) for q, steps in schedule if steps]
    return float(prv.get_epsilon(delta))


def _check(noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> None:
    if noise_multiplier < 0:
        raise ConfigError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    if not 0 < sampling_rate <= 1:
        raise ConfigError(f"sampling rate must be in (0, 1], got {sampling_rate}")
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}")
    if not 0 < delta < 1:
        raise ConfigError(f"delta must be in (0, 1), got {delta}")


@functools.lru_cache(maxsize=1024)
def epsilon(
    *, noise_multiplier: float, sampling_rate: float, steps: int, delta: float, method: str = "rdp"
) -> float:
    """Epsilon after ``steps`` subsampled Gaussian steps (``inf`` without noise, ``0`` after no step)."""
    _check(noise_multiplier, sampling_rate, steps, delta)
    return epsilon_of_schedule(noise_multiplier=noise_multiplier, schedule=((sampling_rate, steps),), delta=delta,
                               method=method)


@functools.lru_cache(maxsize=1024)
def epsilon_of_schedule(*, noise_multiplier: float, schedule: Schedule, delta: float, method: str = "rdp") -> float:
    """Epsilon after the rounds of ``schedule`` (runs of ``(sampling_rate, rounds)``), composed in order."""
    for q, steps in schedule:
        _check(noise_multiplier, q, steps, delta)
    schedule = tuple((float(q), int(steps)) for q, steps in schedule if steps)
    if not schedule:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    return ACCOUNTANTS.get(method)(noise_multiplier, schedule, delta)


def runs_of(rates: Sequence[float]) -> Schedule:
    """Consecutive equal rates as runs: ``[0.5, 0.5, 0.2] -> ((0.5, 2), (0.2, 1))``."""
    runs: list[tuple[float, int]] = []
    for q in rates:
        if runs and runs[-1][0] == q:
            runs[-1] = (q, runs[-1][1] + 1)
        else:
            runs.append((float(q), 1))
    return tuple(runs)


def record_release(state: ServerState, sampling_rate: float) -> None:
    """Append one released round, sampled at ``sampling_rate``, to the state's ledger (checkpointed)."""
    entry = state.buffers.get(LEDGER)
    old = entry["sampling_rate"] if entry is not None else np.zeros(0, np.float64)
    state.buffers[LEDGER] = Parameters({"sampling_rate": np.append(old, np.float64(sampling_rate))})


def ledger_rates(state: ServerState) -> list[float] | None:
    """The sampling rate of every released round, or ``None`` when the strategy keeps no ledger."""
    entry = state.buffers.get(LEDGER)
    return None if entry is None else [float(q) for q in entry["sampling_rate"]]


def noise_for_epsilon(
    *, target_epsilon: float, sampling_rate: float, steps: int, delta: float, method: str = "rdp"
) -> float:
    """The smallest noise multiplier (to 1e-3) whose epsilon after ``steps`` stays within ``target_epsilon``.

    Calibrated with the accountant the run reports with (``method``): first with RDP over integer
    orders (fast, and never below the epsilon of any accountant here), then, for ``pld`` and
    ``prv``, by bisection below that value with the tighter accountant itself. The run therefore
    spends at most the target under ``method``, and a tighter accountant buys less noise for the
    same (epsilon, delta) guarantee (about 8% less at q = 0.2, 20 rounds, epsilon 4).
    """
    import dp_accounting

    _check(1.0, sampling_rate, steps, delta)
    if not target_epsilon > 0:
        raise ConfigError(f"target epsilon must be > 0, got {target_epsilon}")
    if method not in ACCOUNTANTS:
        raise ConfigError(f"unknown accountant {method!r}; choose one of: {ACCOUNTANTS.choices()}")
    z = dp_accounting.calibrate_dp_mechanism(
        lambda: dp_accounting.rdp.RdpAccountant(_FAST_ORDERS),
        lambda z: _event(z, ((sampling_rate, steps),)),
        target_epsilon,
        delta,
        bracket_interval=dp_accounting.ExplicitBracketInterval(0.05, 500.0),
        tol=1e-3,
    )
    if method == "rdp":
        return float(z)
    return _bisect_noise(ACCOUNTANTS.get(method), float(z), ((sampling_rate, steps),), delta, target_epsilon)


def _bisect_noise(accountant: Callable[[float, Schedule, float], float], high: float, schedule: Schedule,
                  delta: float, target: float, tol: float = 1e-3) -> float:
    """Bisect for the smallest noise multiplier in ``(0, high]`` that ``accountant`` puts within ``target``.

    ``high`` must already be within the target (it is never returned above it); epsilon decreases
    with the noise multiplier.
    """
    if accountant(high, schedule, delta) > target:  # not expected (RDP bounds the others): stay where it is safe
        return high
    low = high / 2
    while accountant(low, schedule, delta) <= target:
        high, low = low, low / 2
    while high - low > tol:
        mid = (low + high) / 2
        if accountant(mid, schedule, delta) <= target:
            high = mid
        else:
            low = mid
    return high


def max_rounds(*, noise_multiplier: float, sampling_rate: float, delta: float, target_epsilon: float,
               method: str = "rdp", limit: int = 100_000) -> int:
    """The most steps whose epsilon stays within ``target_epsilon`` (binary search, up to ``limit``)."""
    def ok(steps: int) -> bool:
        return epsilon(noise_multiplier=noise_multiplier, sampling_rate=sampling_rate, steps=steps,
                       delta=delta, method=method) <= target_epsilon

    if not ok(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and ok(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class Budget:
    """A privacy budget that a mechanism checks BEFORE it releases a round.

    Central DP learns a round's real sampling rate only when it samples (a deployment may have
    fewer clients connected than planned), so it asks :meth:`allows` with that rate and skips the
    round, releasing nothing, when the round would exceed ``target_epsilon``.
    """

    noise_multiplier: float
    delta: float
    target_epsilon: float
    method: str = "rdp"

    def allows(self, rates: Sequence[float]) -> bool:
        """Whether rounds sampled at ``rates`` (all of them, in order) stay within the target."""
        return epsilon_of_schedule(noise_multiplier=self.noise_multiplier, schedule=runs_of(rates), delta=self.delta,
                                   method=self.method) <= self.target_epsilon


@dataclass
class EpsilonObserver:
    """Round observer that writes ``epsilon`` into each round's record and enforces a budget.

    With ``ledger=True`` (central DP) each round is accounted with the sampling rate it really
    had: the rates in the state's :data:`LEDGER` (written by central DP for every released round:
    the probability with which each *available* client was sampled), composed round by round; a
    round that released nothing costs nothing. Otherwise (local DP) every round is charged at
    ``sampling_rate``. Register it BEFORE
    the run store and progress bar so that they see the value. With a target, training stops
    (``StopTraining``) after the last round that keeps epsilon within it (the next round is
    predicted at the last round's rate).

    Args:
        noise_multiplier: Noise std divided by the L2 sensitivity (the accounted multiplier).
        sampling_rate: The planned rate, used for rounds without a ledger entry (``1`` for local DP).
        delta: The delta of the reported (epsilon, delta).
        method: ``rdp``, ``pld`` or ``prv``.
        target_epsilon: Budget; ``None`` for no limit.
        planned_rounds: The run's last round (no need to stop after it).
        ledger: Account the rates of the state's ledger (central DP) instead of ``sampling_rate``.
    """

    noise_multiplier: float
    sampling_rate: float
    delta: float
    method: str = "rdp"
    target_epsilon: float | None = None
    planned_rounds: int | None = None
    ledger: bool = False

    def epsilon_after(self, rounds: int) -> float:
        """Epsilon after ``rounds`` rounds at the planned rate."""
        return epsilon(noise_multiplier=self.noise_multiplier, sampling_rate=self.sampling_rate,
                       steps=rounds, delta=self.delta, method=self.method)

    def epsilon_of(self, rates: Sequence[float]) -> float:
        """Epsilon after rounds sampled at ``rates``, in order."""
        return epsilon_of_schedule(noise_multiplier=self.noise_multiplier, schedule=runs_of(rates),
                                   delta=self.delta, method=self.method)

    def rates(self, record: RoundRecord, state: ServerState) -> list[float]:
        """The sampling rate of every released round so far (from the ledger, else the planned rate)."""
        if not self.ledger:
            return [self.sampling_rate] * record.round
        return ledger_rates(state) or []

    def on_round_end(self, record: RoundRecord, state: ServerState) -> None:
        rates = self.rates(record, state)
        eps = self.epsilon_of(rates)
        record.metrics["epsilon"] = eps
        record.metrics["delta"] = self.delta
        if rates:
            record.metrics["dp_sampling_rate"] = rates[-1]
        if record.metrics.get(EXHAUSTED):
            raise StopTraining(
                f"privacy budget: epsilon {eps:.3f} after round {record.round - 1}; round {record.round} was not "
                f"released: at the sampling rate it really had it would exceed the target {self.target_epsilon}"
            )
        last = self.planned_rounds is not None and record.round >= self.planned_rounds
        next_rate = rates[-1] if rates else self.sampling_rate
        if self.target_epsilon is not None and not last and self.epsilon_of([*rates, next_rate]) > self.target_epsilon:
            raise StopTraining(
                f"privacy budget: epsilon {eps:.3f} after round {record.round}; one more round would exceed "
                f"the target {self.target_epsilon}"
            )
