"""Error feedback lets top-k 1% reach the accuracy of uncompressed FedAvg on digits."""

from __future__ import annotations

import pytest
import torch

from fedloom import RunConfig, run_simulation


@pytest.mark.slow
def test_topk_one_percent_with_error_feedback_matches_fedavg_on_digits():
    torch.set_num_threads(1)
    base = RunConfig(dataset="digits", model="logistic", partition="iid", clients=10, rounds=40, lr=0.1,
                     eval_every=40, progress=False)
    accuracy = {}
    for name, changes in {
        "fedavg": {},
        "topk_ef": {"compression": "topk", "topk_fraction": 0.01},
        "topk": {"compression": "topk", "topk_fraction": 0.01, "error_feedback": False},
    }.items():
        result = run_simulation(base.replace(**changes))
        accuracy[name] = result.final["accuracy"]
        if name != "fedavg":  # 7 of 650 weights: 8 bytes each instead of 2600 bytes per client
            assert result.final["bytes_up_per_client"] == 7 * 8
    assert accuracy["fedavg"] > 0.93
    assert accuracy["topk_ef"] >= accuracy["fedavg"] - 0.03, accuracy
    assert accuracy["topk_ef"] >= accuracy["topk"] + 0.05, accuracy  # the residual is what makes it work
