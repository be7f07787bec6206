"""Attacker: accounting that under-reports epsilon (issue 10, finding 5).

* A deployment samples its cohort from the clients that are connected, not from the configured
  population: 20 connected, 10 sampled is q = 0.5, which used to be accounted as the configured
  0.1 (epsilon 7.9 reported against 45.9 spent after 100 rounds at z = 1).
* Local DP was accounted with sensitivity C; the server sees each upload, so the neighbouring
  relation is "replace a client's data", under which the clipped delta moves by 2C.
* Fixed-size cohorts were accounted as Poisson sampling; central DP now samples Poisson.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from fedloom import RunConfig
from fedloom.app.privacy import privacy_observers, privacy_summary, wrap_strategy
from fedloom.backends import InlinePool
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.engine import FederatedLoop, RoundRecord
from fedloom.privacy.accountant import epsilon
from fedloom.strategies import FedAvg

from .helpers import Delta

Z = 1.0


def _deployment(cfg: RunConfig, connected: int):
    """The configured server (strategy + epsilon observer) over a pool of only ``connected`` clients."""
    fed = cfg.federation
    strategy = wrap_strategy(cfg, FedAvg(fraction_fit=fed.fraction, min_fit_clients=fed.min_clients))
    pool = InlinePool(lambda cid: Delta(np.full(4, 0.01)), connected)
    return FederatedLoop(strategy, pool, num_rounds=fed.rounds, seed=0, observers=privacy_observers(cfg))


def _issue_config(**extra) -> RunConfig:
    # 100 clients configured, 10 per round (fraction 0.1, at least 10): planned q = 0.1
    return RunConfig(dataset="iris", clients=100, fraction=0.1, min_clients=10, rounds=5, dp="central",
                     noise_multiplier=Z, **extra)


def test_twenty_connected_ten_sampled_is_accounted_at_half_not_a_tenth():
    result = _deployment(_issue_config(), connected=20).run(Parameters({"w": np.zeros(4)}))
    for record in result.history:
        assert record.metrics["clients_available"] == 20
        assert record.metrics["dp_sampling_rate"] == pytest.approx(0.5)
        want = epsilon(noise_multiplier=Z, sampling_rate=0.5, steps=record.round, delta=1e-5)
        assert record.metrics["epsilon"] == pytest.approx(want, rel=1e-9)  # before the fix: q = 0.1
    # The issue's figures after 100 rounds: 7.9 was reported, 45.9 spent.
    assert epsilon(noise_multiplier=Z, sampling_rate=0.1, steps=100, delta=1e-5) == pytest.approx(7.90, abs=0.01)
    assert epsilon(noise_multiplier=Z, sampling_rate=0.5, steps=100, delta=1e-5) == pytest.approx(45.86, abs=0.01)


@pytest.mark.parametrize("planned", [40, 10])
def test_a_budget_planned_for_the_population_stops_the_run_when_fewer_clients_connect(planned):
    target = epsilon(noise_multiplier=Z, sampling_rate=0.1, steps=planned, delta=1e-5)  # the plan fits exactly
    cfg = _issue_config().replace(rounds=planned, target_epsilon=target)
    result = _deployment(cfg, connected=20).run(Parameters({"w": np.zeros(4)}))
    released = [h for h in result.history if not h.metrics.get("train_dp_budget_exhausted")]
    spent = epsilon(noise_multiplier=Z, sampling_rate=0.5, steps=len(released), delta=1e-5)  # what really happened
    assert result.stopped_early and len(released) < planned
    assert spent <= target * (1 + 1e-6)  # before the fix: every planned round ran, epsilon about 4x the target
    assert result.history[-1].metrics["epsilon"] == pytest.approx(spent)
    if planned == 10:
        # One round at q = 0.5 already costs more than ten at 0.1: the first round is not released
        # (nobody is sampled, the model does not move) and the run stops, having spent nothing.
        assert released == [] and len(result.history) == 1
        assert result.history[0].metrics["clients_sampled"] == 0 and spent == 0.0
        np.testing.assert_array_equal(result.parameters["w"], np.zeros(4))


def _gaussian_delta(eps: float, sensitivity: float, sigma: float) -> float:
    """The exact delta(eps) of one Gaussian mechanism (Balle and Wang, ICML 2018, Theorem 8)."""
    a, b = sensitivity / (2 * sigma), eps * sigma / sensitivity
    return float(norm.cdf(a - b) - math.exp(eps) * norm.cdf(-a - b))


def test_local_dp_epsilon_holds_for_the_replace_one_sensitivity_2c():
    clip, z = 1.0, 2.0
    cfg = RunConfig(dataset="iris", clients=10, rounds=1, dp="local", noise_multiplier=z, clip=clip)
    (observer,) = privacy_observers(cfg)
    record = RoundRecord(1)
    observer.on_round_end(record, ServerState(Parameters()))
    eps = record.metrics["epsilon"]
    # A client whose data moves its clipped delta from +C e1 to -C e1 changes the upload's mean by 2C
    # while the noise std is z C: the reported (eps, 1e-5) must hold for that pair.
    assert _gaussian_delta(eps, 2 * clip, z * clip) <= 1e-5  # before the fix: about 1e-3 (eps for C)
    assert _gaussian_delta(eps, clip, z * clip) < 1e-9  # what the old accounting covered


def test_central_dp_samples_poisson_cohorts_and_the_summary_says_so():
    cfg = RunConfig(dataset="iris", clients=100, fraction=0.2, rounds=40, dp="central", noise_multiplier=Z)
    strategy = wrap_strategy(cfg, FedAvg(fraction_fit=0.2))
    loop = FederatedLoop(strategy, InlinePool(lambda cid: Delta(np.full(4, 0.01)), 100), num_rounds=40, seed=0,
                         observers=privacy_observers(cfg))
    result = loop.run(Parameters({"w": np.zeros(4)}))
    sizes = [int(h.metrics["clients_sampled"]) for h in result.history]
    assert len(set(sizes)) > 3  # before the fix: always exactly 20
    assert abs(np.mean(sizes) - 20) < 3 * math.sqrt(100 * 0.2 * 0.8 / 40) + 0.5
    assert all(h.metrics["dp_sampling_rate"] == pytest.approx(0.2) for h in result.history)
    block = privacy_summary(cfg, result)["privacy"]
    assert block["sampling"].startswith("poisson") and "add or remove" in block["neighbouring"]
    assert block["epsilon"] == pytest.approx(epsilon(noise_multiplier=Z, sampling_rate=0.2, steps=40, delta=1e-5))
