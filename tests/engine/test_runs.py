"""Whole runs: determinism, resume after a crash, and the engine's handling of bad clients."""

import numpy as np
import pytest

from fedloom import RunConfig, run_simulation
from fedloom.engine import RoundRecord
from fedloom.errors import ConfigError, StopTraining

SMALL = RunConfig(dataset="wine", clients=4, rounds=4, fraction=0.5, progress=False, fraction_evaluate=0.5)


def test_same_config_and_seed_give_identical_metrics():
    a, b = run_simulation(SMALL), run_simulation(SMALL)
    assert [h.metrics | {"wall_s": 0} for h in a.history] == [h.metrics | {"wall_s": 0} for h in b.history]
    for name in a.parameters:
        np.testing.assert_array_equal(a.parameters[name], b.parameters[name])
    c = run_simulation(SMALL.replace(seed=1))
    assert c.history[-1].metrics["loss"] != a.history[-1].metrics["loss"]


class CrashAfter:
    def __init__(self, rnd):
        self.rnd = rnd

    def on_round_end(self, record: RoundRecord, state):
        if record.round == self.rnd:
            raise KeyboardInterrupt("simulated crash")


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    full = run_simulation(SMALL)
    ckpt = tmp_path / "ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt):
        run_simulation(SMALL, observers=[CrashAfter(2)], checkpoint_path=ckpt)
    resumed = run_simulation(SMALL, checkpoint_path=ckpt, resume=True)
    assert [h.round for h in resumed.history] == [1, 2, 3, 4]
    for name in full.parameters:
        np.testing.assert_array_equal(full.parameters[name], resumed.parameters[name])
    assert resumed.history[-1].metrics["loss"] == full.history[-1].metrics["loss"]


class StopAt:
    def on_round_end(self, record, state):
        if record.round == 2:
            raise StopTraining("budget reached")


def test_observer_can_stop_a_run_cleanly():
    result = run_simulation(SMALL, observers=[StopAt()])
    assert len(result.history) == 2 and result.stopped_early == "budget reached"


def test_more_clients_than_examples_is_a_clear_error():
    with pytest.raises(ConfigError, match="training examples"):
        run_simulation(RunConfig(dataset="iris", clients=500, progress=False))


def test_records_bytes_and_federated_metrics():
    result = run_simulation(SMALL)
    m = result.history[0].metrics
    assert m["bytes_up"] > 0 and m["bytes_down"] >= m["bytes_up"]
    assert 0.0 <= m["fed_accuracy"] <= 1.0 and m["train_loss"] > 0
