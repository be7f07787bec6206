"""End-to-end privacy runs on digits: SecAgg+ accuracy, epsilon in history and summary, DP-SGD."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fedloom import RunConfig, TorchClient, run_simulation
from fedloom.errors import ConfigError
from fedloom.privacy.opacus import DPSGD

SMALL = {"dataset": "digits", "clients": 6, "rounds": 3, "hidden": 32, "progress": False, "seed": 1}


@pytest.mark.slow
def test_secagg_run_reaches_the_same_accuracy_on_the_same_seed():
    plain = run_simulation(RunConfig(**SMALL))
    secure = run_simulation(RunConfig(**SMALL, secagg=True))
    assert secure.final["accuracy"] == pytest.approx(plain.final["accuracy"], abs=0.01)
    assert secure.history[-1].metrics["train_secagg_survivors"] == 6


@pytest.mark.slow
def test_central_dp_run_reports_epsilon_every_round_within_the_target(tmp_path):
    runner = pytest.importorskip("fedloom.runs.runner")
    cfg = RunConfig(**{**SMALL, "progress": False}, dp="central", target_epsilon=4.0, clip=1.0, out=str(tmp_path))
    summary, out = runner.execute_run(cfg)
    eps = [h["epsilon"] for h in summary["history"]]
    assert len(eps) == 3 and eps == sorted(eps) and eps[-1] <= 4.0 * 1.001
    written = json.loads((out / "summary.json").read_text())
    assert written["privacy"]["epsilon"] == pytest.approx(eps[-1])
    assert written["privacy"]["delta"] == 1e-5


def test_secagg_refuses_robust_aggregation():
    from fedloom.app.privacy import wrap_strategy
    from fedloom.strategies import FedAvg

    class Median:
        def __call__(self, updates, weights):
            return np.median(updates, axis=0)

    with pytest.raises(ConfigError, match="robust aggregators cannot run on a single sum"):
        wrap_strategy(RunConfig(secagg=True), FedAvg(aggregator=Median()))


def test_dp_sgd_clips_per_sample_gradients_and_reports_epsilon():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5) * 10, torch.randint(0, 3, (64,))
    clip, lr = 1e-3, 1.0
    client = TorchClient(model_fn=lambda: nn.Linear(5, 3), train_data=(x, y), lr=lr, batch_size=16,
                         dp_sgd=DPSGD(noise_multiplier=0.0, max_grad_norm=clip))
    start = client.get_parameters({})
    res = client.fit(start, {"seed": 0, "local_epochs": 1})
    moved = np.linalg.norm(res.parameters.flatten() - start.flatten())
    steps = 64 // 16
    assert 0 < moved <= 3 * steps * lr * clip  # Poisson batches: a few steps, each at most lr * clip
    noisy = TorchClient(model_fn=lambda: nn.Linear(5, 3), train_data=(x, y), lr=0.1, batch_size=16,
                        dp_sgd=DPSGD(noise_multiplier=1.0, max_grad_norm=1.0))
    first = noisy.fit(start, {"seed": 0}).metrics
    second = noisy.fit(start, {"seed": 1}).metrics
    assert 0 < first["dp_sgd_epsilon"] < second["dp_sgd_epsilon"] < float("inf")
