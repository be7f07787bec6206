"""Stragglers: partial work kept where the strategy accepts it, dropped otherwise; deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom import Client, EvaluateRes, FitIns, FitRes, Parameters, simulate
from fedloom.core.types import Config
from fedloom.errors import ConfigError
from fedloom.scenarios import StragglerClient, StragglerDropped, is_straggler
from fedloom.strategies import FedAvg, FedProx

W0 = Parameters({"w": np.zeros(1)})


class _EpochCounter(Client):
    """Returns w + local_epochs, so the model shows how much work was done."""

    def get_parameters(self, config: Config) -> Parameters:
        return W0

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return FitRes(Parameters({"w": parameters["w"] + config["local_epochs"]}), 1)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return EvaluateRes(0.0, 1)


def _straggling_seed(fraction: float, want: bool) -> int:
    return next(s for s in range(1000) if is_straggler(s, fraction) == want)


def test_partial_work_when_accepted() -> None:
    seed = _straggling_seed(0.5, True)
    client = StragglerClient(_EpochCounter(), fraction=0.5)
    res = client.fit_task(FitIns(W0, {"seed": seed, "local_epochs": 20, "accept_partial_work": True}))
    assert 1 <= res.parameters["w"][0] < 20
    assert res.metrics["straggler"] == 1 and res.metrics["straggler_epochs"] == res.parameters["w"][0]
    # Same task seed, same number of epochs.
    again = client.fit_task(FitIns(W0, {"seed": seed, "local_epochs": 20, "accept_partial_work": True}))
    assert again.parameters["w"][0] == res.parameters["w"][0]


def test_straggler_fails_when_partial_work_is_not_accepted_or_mode_is_drop() -> None:
    seed = _straggling_seed(0.5, True)
    with pytest.raises(StragglerDropped):
        StragglerClient(_EpochCounter(), fraction=0.5).fit_task(FitIns(W0, {"seed": seed, "local_epochs": 5}))
    with pytest.raises(StragglerDropped):
        StragglerClient(_EpochCounter(), fraction=0.5, mode="drop").fit_task(
            FitIns(W0, {"seed": seed, "local_epochs": 5, "accept_partial_work": True})
        )


def test_non_straggler_does_full_work() -> None:
    seed = _straggling_seed(0.5, False)
    res = StragglerClient(_EpochCounter(), fraction=0.5).fit_task(FitIns(W0, {"seed": seed, "local_epochs": 5}))
    assert res.parameters["w"][0] == 5 and res.metrics["straggler"] == 0


def test_straggler_rate_matches_the_fraction() -> None:
    rate = np.mean([is_straggler(s, 0.9) for s in range(4000)])
    assert abs(rate - 0.9) < 0.02
    assert not any(is_straggler(s, 0.0) for s in range(100))


def test_fedprox_keeps_stragglers_fedavg_drops_them() -> None:
    def client_fn(cid: str) -> Client:
        return StragglerClient(_EpochCounter(), fraction=0.5)

    config = {"local_epochs": 10}
    prox = simulate(client_fn, num_clients=40, strategy=FedProx(proximal_mu=0.0, fit_config=config), rounds=1,
                    initial_parameters=W0)
    avg = simulate(client_fn, num_clients=40, strategy=FedAvg(fit_config=config), rounds=1, initial_parameters=W0)
    rec_p, rec_a = prox.history[0].metrics, avg.history[0].metrics
    assert rec_p["fit_clients"] == 40 and rec_p["fit_failures"] == 0
    assert 0 < rec_p["train_straggler"] < 1
    assert prox.parameters["w"][0] < 10  # partial work pulled the mean below E
    assert rec_a["fit_clients"] + rec_a["fit_failures"] == 40 and rec_a["fit_failures"] > 0
    assert avg.parameters["w"][0] == 10  # only full work aggregated
    assert rec_a["fit_failures"] == round(rec_p["train_straggler"] * 40)  # the same clients straggled


def test_bad_straggler_settings() -> None:
    with pytest.raises(ConfigError, match="stragglers"):
        StragglerClient(_EpochCounter(), fraction=1.5)
    with pytest.raises(ConfigError, match="straggler_mode"):
        StragglerClient(_EpochCounter(), fraction=0.5, mode="late")


def test_config_path_wraps_clients_for_stragglers_and_attackers() -> None:
    from fedloom import RunConfig, run_simulation
    from fedloom.scenarios import MaliciousClient

    base = {"dataset": "iris", "clients": 6, "rounds": 2, "local_epochs": 3, "stragglers": 0.5, "progress": False}
    prox = run_simulation(RunConfig(strategy="fedprox", **base)).history  # type: ignore[arg-type]
    avg = run_simulation(RunConfig(strategy="fedavg", **base)).history  # type: ignore[arg-type]
    assert all(h.metrics["fit_failures"] == 0 for h in prox)
    assert sum(h.metrics["train_straggler"] for h in prox) > 0
    assert all(h.metrics["fit_clients"] + h.metrics["fit_failures"] == 6 for h in avg)
    assert sum(h.metrics["fit_failures"] for h in avg) > 0

    from fedloom import build_simulation

    sim = build_simulation(RunConfig(dataset="iris", clients=10, attack="sign_flip", attackers=0.2, progress=False))
    wrapped = [cid for cid in map(str, range(10)) if isinstance(sim.client_fn(cid), MaliciousClient)]
    assert len(wrapped) == 2
