"""Under 20% scaled sign-flip attackers on digits, FedAvg breaks while robust aggregators hold."""

from __future__ import annotations

import pytest

from fedloom import RunConfig, run_simulation

BASE = {"dataset": "digits", "model": "linear", "clients": 20, "rounds": 8, "partition": "iid", "lr": 0.1,
        "client_test_fraction": 0.0, "byzantine_f": 4, "trim_beta": 0.2, "progress": False, "seed": 0}


def _accuracy(**kw: object) -> float:
    return run_simulation(RunConfig(**{**BASE, **kw})).final["accuracy"]  # type: ignore[arg-type]


@pytest.mark.slow
def test_sign_flip_breaks_fedavg_but_not_robust_aggregators() -> None:
    clean = _accuracy(aggregator="mean")
    assert clean > 0.85
    attack = {"attack": "sign_flip", "attackers": 0.2, "attack_scale": 4.0}
    assert _accuracy(aggregator="mean", **attack) < 0.5 * clean
    for agg in ("median", "krum", "trimmed_mean"):
        assert _accuracy(aggregator=agg, **attack) >= 0.85 * clean, agg
