"""One-run privacy auditing: an empirical lower bound on epsilon from canaries inserted into ONE run.

Paper: Thomas Steinke, Milad Nasr, Matthew Jagielski, "Privacy Auditing with One (1) Training Run",
NeurIPS 2023, arXiv:2305.08846 (Corollary 5.4 and the code of its Appendix D).

``m`` canaries are each included in the run independently with probability 1/2. After training,
the auditor guesses "included" for the ``k+`` highest scores, "excluded" for the ``k-`` lowest,
and abstains on the rest: ``r = k+ + k-`` guesses, ``v`` of them correct. If the run is
(epsilon, delta)-DP, ``v`` is stochastically dominated by ``Binomial(r, e^eps / (1 + e^eps))`` up to
a delta term, so the p-value of ``v`` is :func:`p_value` (beta + alpha * 2 m delta), and the
largest epsilon rejected at confidence 0.95 (:func:`epsilon_lower_bound`, bisection) is a lower
bound on the run's true epsilon, valid from a single run. A lower bound ABOVE the accountant's
epsilon means the implementation does not deliver what it accounts: a bug.

:func:`audit_central_dp` applies it to fedloom's central DP (:class:`~fedloom.privacy.dp.CentralDP`
around FedAvg, Poisson sampling, its real noise) with canary CLIENTS: each sends an update of norm
``clip`` along its own random direction (gradient canaries, the strongest white-box setting), and
the auditor, who sees every released global model (as every client does), scores canary ``i`` by
``sum over rounds of <theta_r - theta_{r-1}, u_i>``. The population can also hold ordinary clients
(random updates standing in for training clients). ``k+ = k-`` are fixed before the run (no
choice among several ``k``, which would need a multiple-testing correction).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitRes
from fedloom.errors import ConfigError

__all__ = ["CanaryAudit", "audit_central_dp", "count_correct", "epsilon_lower_bound", "p_value"]


def _binom_pmf(k: int, n: int, p: float) -> float:
    from scipy.stats import binom

    return float(binom.pmf(k, n, p))


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """P[at least ``v`` of ``r`` guesses correct] under (eps, delta)-DP, ``m`` canaries (Corollary 5.4).

    ``beta = P[Binomial(r, q) >= v]`` with ``q = e^eps / (1 + e^eps)``, plus ``alpha * 2 m delta``
    where ``alpha = max_i P[v - i <= Binomial(r, q) < v] / i``.
    """
    from scipy.stats import binom

    if not 0 <= v <= r <= m:
        raise ConfigError(f"need 0 <= correct ({v}) <= guesses ({r}) <= canaries ({m})")
    if eps < 0 or not 0 <= delta <= 1:
        raise ConfigError(f"need eps >= 0 and delta in [0, 1], got {eps}, {delta}")
    q = 1.0 / (1.0 + math.exp(-eps))
    beta = float(binom.sf(v - 1, r, q))
    alpha = cumulative = 0.0
    if delta > 0:
        for i in range(1, v + 1):
            cumulative += _binom_pmf(v - i, r, q)
            if cumulative > i * alpha:
                alpha = cumulative / i
    return min(beta + alpha * delta * 2 * m, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """The largest epsilon whose p-value for ``v`` correct of ``r`` guesses is below ``1 - confidence``.

    The paper's ``get_eps_audit``: grow an upper end by 1 until it is not rejected, then bisect 30
    times, keeping the lower end rejected. 0 when nothing is rejected.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    p = 1.0 - confidence
    lo, hi = 0.0, 1.0
    if p_value(m, r, v, 0.0, delta) >= p:
        return 0.0
    while p_value(m, r, v, hi, delta) < p:
        hi += 1.0
        if hi > 1e3:  # pragma: no cover - unreachable for finite r
            return math.inf
    for _ in range(30):
        mid = (lo + hi) / 2
        if p_value(m, r, v, mid, delta) < p:
            lo = mid
        else:
            hi = mid
    return lo


def count_correct(scores: np.ndarray, included: np.ndarray, k_plus: int, k_minus: int) -> tuple[int, int]:
    """Guess "in" for the ``k_plus`` highest scores and "out" for the ``k_minus`` lowest: ``(r, v)``."""
    scores, included = np.asarray(scores, np.float64), np.asarray(included, bool)
    if k_plus < 0 or k_minus < 0 or k_plus + k_minus > scores.size:
        raise ConfigError(f"need 0 <= k+ ({k_plus}), k- ({k_minus}) and k+ + k- <= canaries ({scores.size})")
    order = np.argsort(scores, kind="mergesort")
    top, bottom = order[scores.size - k_plus:] if k_plus else order[:0], order[:k_minus]
    v = int(included[top].sum()) + int((~included[bottom]).sum())
    return k_plus + k_minus, v


class _FixedUpdate(Client):
    """A client whose update is always ``delta`` (a canary, or a stand-in for a training client)."""

    def __init__(self, delta: np.ndarray) -> None:
        self.delta = delta

    def get_parameters(self, config: Config) -> Parameters:
        return Parameters({"w": np.zeros(self.delta.size)})

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return FitRes(Parameters({"w": parameters["w"] + self.delta}), 1)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return EvaluateRes(0.0, 1, {})


@dataclass
class CanaryAudit:
    """The outcome of a one-run audit.

    Attributes:
        canaries: ``m``; guesses: ``r``; correct: ``v``.
        epsilon_lower: The empirical lower bound at ``confidence``.
        epsilon_accounted: The accountant's epsilon for the rounds released (its ledger's rates).
        noise_multiplier, clip, rounds, delta, accountant: The mechanism audited.
    """

    canaries: int
    guesses: int
    correct: int
    epsilon_lower: float
    epsilon_accounted: float
    noise_multiplier: float
    clip: float
    rounds: int
    delta: float
    accountant: str
    confidence: float
    sampling_rates: list[float] = field(default_factory=list)

    @property
    def violated(self) -> bool:
        """The lower bound exceeds the accounted epsilon: the implementation leaks more than it accounts."""
        return self.epsilon_lower > self.epsilon_accounted

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["violated"] = self.violated
        out["sampling_rates"] = sorted(set(self.sampling_rates))
        return out


def audit_central_dp(
    *,
    noise_multiplier: float,
    rounds: int,
    canaries: int = 1000,
    other_clients: int = 0,
    fraction: float = 1.0,
    clip: float = 1.0,
    dim: int | None = None,
    guess_fraction: float = 0.1,
    delta: float = 1e-5,
    accountant: str = "rdp",
    confidence: float = 0.95,
    seed: int | None = None,
    strategy_factory: Callable[..., Any] | None = None,
) -> CanaryAudit:
    """Train once with central DP and ``canaries`` canary clients; bound epsilon from below.

    Args:
        noise_multiplier: ``z`` of :class:`~fedloom.privacy.dp.CentralDP` (what the accountant charges).
        rounds: Rounds of the run.
        canaries: ``m``; each joins the population with probability 1/2.
        other_clients: Ordinary clients (random updates of norm ``clip``) in the population too.
        fraction: Expected share of the population sampled per round (Poisson, as central DP does).
        clip: Clip norm; canaries send updates of exactly this norm.
        dim: Model size (default ``4 m``): canary directions are random unit vectors in it.
        guess_fraction: ``r / m``: half of it guessed "in" (top scores), half "out" (bottom).
        delta: The delta of both epsilons.
        accountant: ``rdp``, ``pld`` or ``prv``.
        confidence: Of the lower bound (0.95 in the paper).
        seed: Seeds the canary coins and directions (not the DP noise: that is the OS CSPRNG's).
        strategy_factory: Builds the strategy from ``(FedAvg, noise_multiplier=, clip=)``; default
            :class:`~fedloom.privacy.dp.CentralDP` (a test passes a deliberately broken one).
    """
    from fedloom.privacy.accountant import epsilon_of_schedule, ledger_rates, runs_of
    from fedloom.privacy.dp import CentralDP
    from fedloom.strategies.fedavg import FedAvg

    if canaries < 2 or rounds < 1:
        raise ConfigError(f"need at least 2 canaries and 1 round, got {canaries} and {rounds}")
    if not 0 < guess_fraction <= 1:
        raise ConfigError(f"guess_fraction must be in (0, 1], got {guess_fraction}")
    rng = np.random.default_rng(seed)
    dim = dim or 4 * canaries
    directions = rng.standard_normal((canaries, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    included = rng.random(canaries) < 0.5
    members = [_FixedUpdate(clip * directions[i]) for i in np.flatnonzero(included)]
    for _ in range(other_clients):
        u = rng.standard_normal(dim)
        members.append(_FixedUpdate(clip * u / np.linalg.norm(u)))
    if not members:
        raise ConfigError("no client joined the population: use more canaries or other clients")
    build = strategy_factory or CentralDP
    strategy = build(FedAvg(fraction_fit=fraction, min_fit_clients=1), noise_multiplier=noise_multiplier, clip=clip)
    state = strategy.initialize(Parameters({"w": np.zeros(dim)}), seed=0)
    ids = [str(i) for i in range(len(members))]
    scores = np.zeros(canaries)
    for rnd in range(1, rounds + 1):
        before = state.parameters["w"].astype(np.float64).copy()
        tasks = strategy.configure_fit(state, rnd, ids)
        results = [(cid, members[int(cid)].fit_task(ins)) for cid, ins in tasks]
        strategy.aggregate_fit(state, rnd, results, [])
        scores += directions @ (state.parameters["w"].astype(np.float64) - before)
    half = max(1, int(round(guess_fraction * canaries / 2)))
    r, v = count_correct(scores, included, half, half)
    rates = list(ledger_rates(state) or [])
    eps_acc = epsilon_of_schedule(noise_multiplier=noise_multiplier, schedule=runs_of(rates), delta=delta,
                                  method=accountant)
    return CanaryAudit(canaries=canaries, guesses=r, correct=v,
                       epsilon_lower=epsilon_lower_bound(canaries, r, v, delta, confidence),
                       epsilon_accounted=float(eps_acc), noise_multiplier=noise_multiplier, clip=clip,
                       rounds=rounds, delta=delta, accountant=accountant, confidence=confidence,
                       sampling_rates=rates)
