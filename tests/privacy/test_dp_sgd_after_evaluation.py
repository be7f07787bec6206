"""DP-SGD keeps training after a federated evaluation (which leaves the shared module in eval mode,
and Opacus refuses a module in eval mode): every round of such a run used to fail from round 2 on."""

from __future__ import annotations

import pytest

from fedloom import RunConfig, run_simulation


@pytest.mark.parametrize("personalization", ["none", "fedper"])
def test_dp_sgd_trains_after_federated_evaluation(personalization: str) -> None:
    cfg = RunConfig(dataset="iris", clients=3, rounds=2, progress=False, fraction_evaluate=1.0, dp_sgd=True,
                    noise_multiplier=0.5, hidden=8, personalization=personalization)
    result = run_simulation(cfg)
    assert [r.metrics["fit_failures"] for r in result.history] == [0.0, 0.0]
    assert result.history[-1].metrics["train_dp_sgd_epsilon"] > 0
