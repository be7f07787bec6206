"""The privacy ledger: library-matching epsilons, calibration, per-round reporting and budgets."""

from __future__ import annotations

import dp_accounting
import pytest

from fedloom import RunConfig
from fedloom.app.privacy import privacy_observers, resolve_noise
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.engine import RoundRecord
from fedloom.errors import ConfigError, StopTraining
from fedloom.privacy.accountant import EpsilonObserver, epsilon, max_rounds, noise_for_epsilon

ACCEPTANCE = {"noise_multiplier": 1.0, "sampling_rate": 0.01, "steps": 1000, "delta": 1e-5}


def library_epsilon(accountant) -> float:
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.0)), 1000)
    accountant.compose(event)
    return accountant.get_epsilon(1e-5)


def test_rdp_epsilon_matches_the_library():
    eps = epsilon(**ACCEPTANCE, method="rdp")
    assert eps == pytest.approx(2.10, abs=0.01)
    assert eps == pytest.approx(library_epsilon(dp_accounting.rdp.RdpAccountant()), rel=1e-9)


def test_pld_epsilon_matches_the_library():
    eps = epsilon(**ACCEPTANCE, method="pld")
    assert eps == pytest.approx(1.83, abs=0.01)
    assert eps == pytest.approx(library_epsilon(dp_accounting.pld.PLDAccountant()), rel=1e-9)


def test_prv_epsilon_agrees_with_pld():
    assert epsilon(**ACCEPTANCE, method="prv") == pytest.approx(1.83, abs=0.02)


def test_edge_cases_and_calibration():
    assert epsilon(noise_multiplier=1.0, sampling_rate=0.1, steps=0, delta=1e-5) == 0.0
    assert epsilon(noise_multiplier=0.0, sampling_rate=0.1, steps=3, delta=1e-5) == float("inf")
    z = noise_for_epsilon(target_epsilon=4.0, sampling_rate=0.1, steps=50, delta=1e-5)
    assert 0.99 * 4.0 <= epsilon(noise_multiplier=z, sampling_rate=0.1, steps=50, delta=1e-5) <= 4.0
    assert max_rounds(noise_multiplier=z, sampling_rate=0.1, delta=1e-5, target_epsilon=4.0, limit=60) == 50
    with pytest.raises(ConfigError):
        epsilon(noise_multiplier=1.0, sampling_rate=0.0, steps=3, delta=1e-5)


def test_observer_reports_epsilon_and_stops_before_the_budget_is_exceeded():
    state = ServerState(Parameters())
    z = 1.0
    eps2 = epsilon(noise_multiplier=z, sampling_rate=0.5, steps=2, delta=1e-5)
    obs = EpsilonObserver(z, 0.5, 1e-5, target_epsilon=eps2 * 1.0001, planned_rounds=10)
    record = RoundRecord(1)
    obs.on_round_end(record, state)
    assert record.metrics["epsilon"] == pytest.approx(epsilon(noise_multiplier=z, sampling_rate=0.5, steps=1,
                                                                delta=1e-5))
    with pytest.raises(StopTraining, match="would exceed"):
        obs.on_round_end(RoundRecord(2), state)
    EpsilonObserver(z, 0.5, 1e-5, target_epsilon=eps2 * 1.0001, planned_rounds=2).on_round_end(RoundRecord(2), state)


def test_a_run_that_would_overspend_refuses_to_start_and_calibration_fits_the_budget():
    cfg = RunConfig(dataset="iris", clients=10, fraction=0.5, rounds=100, dp="central", noise_multiplier=0.8,
                    target_epsilon=2.0)
    with pytest.raises(ConfigError, match="at most \\d+ rounds fit"):
        privacy_observers(cfg)
    calibrated = cfg.replace(noise_multiplier=0.0)
    z = resolve_noise(calibrated)
    assert epsilon(noise_multiplier=z, sampling_rate=0.5, steps=100, delta=1e-5) <= 2.0 * 1.001
    with pytest.raises(ConfigError, match="--dp central needs"):
        RunConfig(dp="central").validate()
    with pytest.raises(ConfigError, match="unknown --dp"):
        RunConfig(dp="sometimes").validate()


def test_cli_has_the_privacy_flags_and_bad_values_are_clear():
    from click.testing import CliRunner

    from fedloom.cli import cli

    out = CliRunner().invoke(cli, ["run", "--help"]).output
    for flag in ("--secagg", "--secagg-neighbours", "--secagg-threshold", "--dp", "--noise-multiplier", "--clip",
                 "--target-epsilon", "--delta", "--dp-sgd"):
        assert flag in out
    with pytest.raises(ConfigError, match="cannot hold the sum of 20 clients"):
        RunConfig(clients=20, secagg=True, secagg_bits=4).validate()
