"""One-run auditing: the paper's bound on known cases; below the accountant on a correct run, above on a broken one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

import fedloom.privacy.dp as dp_module
from fedloom.audit.canaries import audit_central_dp, count_correct, epsilon_lower_bound, p_value
from fedloom.errors import ConfigError
from fedloom.privacy.accountant import noise_for_epsilon


def test_all_correct_without_delta_is_the_closed_form():
    # delta = 0, v = r: p = q^r, so the bound is log(q / (1 - q)) with q = 0.05^(1/r).
    for r in (10, 100, 1000):
        q = 0.05 ** (1 / r)
        assert epsilon_lower_bound(r, r, r, 0.0) == pytest.approx(math.log(q / (1 - q)), abs=1e-6)
    assert epsilon_lower_bound(100, 100, 100, 0.0) == pytest.approx(3.4930, abs=1e-4)


def test_p_value_matches_corollary_5_4_term_by_term():
    m, r, v, eps, delta = 500, 60, 50, 1.0, 1e-3
    q = math.exp(eps) / (1 + math.exp(eps))
    beta = binom.sf(v - 1, r, q)
    alpha = max(sum(binom.pmf(v - j, r, q) for j in range(1, i + 1)) / i for i in range(1, v + 1))
    assert p_value(m, r, v, eps, delta) == pytest.approx(beta + alpha * delta * 2 * m, rel=1e-9)
    assert p_value(m, r, v, eps, 0.0) == pytest.approx(beta, rel=1e-9)


def test_chance_guessing_bounds_nothing_and_bad_input_is_refused():
    assert epsilon_lower_bound(1000, 100, 50, 1e-5) == 0.0
    with pytest.raises(ConfigError, match="correct"):
        p_value(10, 5, 6, 1.0, 0.0)


def test_the_bound_on_randomized_response_stays_below_and_near_its_epsilon():
    # eps-DP randomized response on each canary's bit: the textbook case where one run is tight.
    rng = np.random.default_rng(0)
    eps, m = 2.0, 5000
    bits = rng.random(m) < 0.5
    truthful = rng.random(m) < math.exp(eps) / (1 + math.exp(eps))
    guesses = np.where(truthful, bits, ~bits)
    v = int((guesses == bits).sum())
    bound = epsilon_lower_bound(m, m, v, 0.0)
    assert 0.8 * eps < bound < eps


def test_count_correct_by_hand():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    included = np.array([True, False, True, False, False, True])
    assert count_correct(scores, included, 2, 2) == (4, 1 + 1)  # top: in, out; bottom: out, in


def test_canary_bound_is_below_the_accountant_on_a_correct_central_dp_run():
    z = noise_for_epsilon(target_epsilon=2.0, sampling_rate=1.0, steps=2, delta=1e-5)
    audit = audit_central_dp(noise_multiplier=z, rounds=2, canaries=1000, other_clients=50, seed=0)
    assert audit.epsilon_accounted == pytest.approx(2.0, abs=0.01)
    assert audit.correct > audit.guesses / 2  # the canaries are seen, just not more than DP allows
    assert audit.epsilon_lower < audit.epsilon_accounted and not audit.violated


def test_canary_bound_exceeds_the_accountant_when_the_noise_is_ten_times_too_small(monkeypatch):
    real = dp_module.gaussian_release

    def broken(values, *, sensitivity, noise_multiplier, source):
        return real(values, sensitivity=sensitivity, noise_multiplier=noise_multiplier / 10, source=source)

    monkeypatch.setattr(dp_module, "gaussian_release", broken)  # the bug: CentralDP noises 10x too little
    z = noise_for_epsilon(target_epsilon=2.0, sampling_rate=1.0, steps=2, delta=1e-5)
    audit = audit_central_dp(noise_multiplier=z, rounds=2, canaries=1000, other_clients=50, seed=0)
    assert audit.epsilon_lower > audit.epsilon_accounted and audit.violated


def test_a_broken_strategy_subclass_is_caught_under_poisson_sampling():
    class TenthNoise(dp_module.CentralDP):
        def __init__(self, inner, *, noise_multiplier, clip):
            super().__init__(inner, noise_multiplier=noise_multiplier / 10, clip=clip)

    # Poisson sampling at q = 1/2 over 8 rounds: an included canary is missed in every round 1 time in 256.
    z = noise_for_epsilon(target_epsilon=2.0, sampling_rate=0.5, steps=8, delta=1e-5)
    kw = dict(noise_multiplier=z, rounds=8, canaries=1000, fraction=0.5, guess_fraction=0.4, seed=1)
    ok = audit_central_dp(**kw)
    bad = audit_central_dp(**kw, strategy_factory=TenthNoise)
    assert 0.49 < max(ok.sampling_rates) < 0.51  # Poisson sampling at the expected cohort m / n
    assert ok.epsilon_lower < ok.epsilon_accounted < bad.epsilon_lower
