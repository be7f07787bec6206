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


def test_calibration_with_a_tighter_accountant_needs_less_noise_and_stays_within_the_target():
    args = {"sampling_rate": 0.2, "steps": 20, "delta": 1e-5}
    z_rdp = noise_for_epsilon(target_epsilon=4.0, **args)
    z_pld = noise_for_epsilon(target_epsilon=4.0, **args, method="pld")
    assert z_pld < 0.95 * z_rdp  # PLD is tighter: the same (epsilon, delta) with less noise
    assert 0.995 * 4.0 <= epsilon(noise_multiplier=z_pld, **args, method="pld") <= 4.0
    assert epsilon(noise_multiplier=z_pld, **args, method="rdp") > 4.0  # RDP would not certify it
    with pytest.raises(ConfigError, match="unknown accountant"):
        noise_for_epsilon(target_epsilon=4.0, **args, method="moments")


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


class _ShrinkingPool:
    """20 clients connected for two rounds, then only 10 (a deployment losing clients)."""

    def __init__(self) -> None:
        import numpy as np

        from fedloom.backends import InlinePool

        from .helpers import DeltaClient

        self.inner = InlinePool(lambda cid: DeltaClient(np.full(3, 0.01), 5), 20)
        self.calls = 0

    def available(self):
        self.calls += 1
        return self.inner.available()[: 20 if self.calls <= 2 else 10]

    def fit(self, tasks, *, expected, timeout=None):
        return self.inner.fit(tasks, expected=expected, timeout=timeout)

    def evaluate(self, tasks, *, timeout=None):
        return self.inner.evaluate(tasks, timeout=timeout)

    def close(self):
        pass


@pytest.mark.parametrize("method", ["rdp", "pld"])
def test_rounds_at_different_rates_compose_and_survive_a_resume(tmp_path, method):
    import numpy as np

    from fedloom.engine import FederatedLoop
    from fedloom.privacy.dp import CentralDP
    from fedloom.strategies import FedAvg

    def loop(rounds, pool, ckpt=None):
        dp = CentralDP(FedAvg(fraction_fit=0.1, min_fit_clients=5), noise_multiplier=1.0, clip=1.0)
        obs = EpsilonObserver(1.0, 0.05, 1e-5, method=method, ledger=True)
        return FederatedLoop(dp, pool, num_rounds=rounds, seed=0, observers=[obs], checkpoint_path=ckpt)

    glob = Parameters({"w": np.zeros(3, np.float32)})
    full = loop(4, _ShrinkingPool()).run(glob)
    # 5 of 20 available (q = 0.25) twice, then 5 of 10 (q = 0.5) twice: composed as the library composes
    assert [h.metrics["dp_sampling_rate"] for h in full.history] == [0.25, 0.25, 0.5, 0.5]
    event = dp_accounting.ComposedDpEvent([
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(1.0)), 2) for q in (0.25, 0.5)])
    acc = dp_accounting.rdp.RdpAccountant() if method == "rdp" else dp_accounting.pld.PLDAccountant()
    acc.compose(event)
    assert full.history[-1].metrics["epsilon"] == pytest.approx(acc.get_epsilon(1e-5), rel=0.02)
    # Resumed after round 2 from the checkpoint: the ledger came back with the state.
    ckpt = tmp_path / "ckpt.safetensors"
    pool = _ShrinkingPool()
    loop(2, pool, ckpt).run(glob)
    second = loop(4, pool, ckpt)
    state, history = second.resume_state()
    resumed = second.run(state=state, history=history)
    assert resumed.history[-1].metrics["epsilon"] == pytest.approx(full.history[-1].metrics["epsilon"], rel=1e-12)
