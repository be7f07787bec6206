"""A run stopped and resumed from its checkpoint ends with the same parameters as an uninterrupted
run: optimizer moments and control variates travel in the checkpointed ServerState."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedloom import FederatedLoop, RunConfig, build_simulation
from fedloom.backends import InlinePool

ROUNDS, STOP = 4, 2


def _cfg(strategy: str) -> RunConfig:
    return RunConfig(dataset="iris", model="linear", clients=4, fraction=0.5, rounds=ROUNDS, strategy=strategy,
                     partition="iid", local_epochs=1, batch_size=8, progress=False, seed=3)


@pytest.mark.parametrize("strategy", ["fedadam", "fedyogi", "fedavgm", "scaffold"])
def test_resume_equals_uninterrupted(strategy: str, tmp_path: Path) -> None:
    cfg = _cfg(strategy)
    sim = build_simulation(cfg)
    full = FederatedLoop(sim.strategy, InlinePool(sim.client_fn, cfg.clients), num_rounds=ROUNDS, seed=cfg.seed)
    expected = full.run(sim.initial_parameters)

    ckpt = tmp_path / "ckpt.safetensors"
    first = build_simulation(cfg)
    FederatedLoop(first.strategy, InlinePool(first.client_fn, cfg.clients), num_rounds=STOP, seed=cfg.seed,
                  checkpoint_path=ckpt).run(first.initial_parameters)
    # A new server process: fresh strategy object, state only from the checkpoint. The clients keep
    # their own state (SCAFFOLD's c_i), as deployed clients do.
    second = build_simulation(cfg)
    loop = FederatedLoop(second.strategy, InlinePool(first.client_fn, cfg.clients), num_rounds=ROUNDS,
                         seed=cfg.seed, checkpoint_path=ckpt)
    resumed_state = loop.resume_state()
    assert resumed_state is not None and resumed_state[0].round == STOP
    resumed = loop.run(state=resumed_state[0], history=resumed_state[1])

    assert set(resumed.state.buffers) == set(expected.state.buffers) and expected.state.buffers
    for name in expected.parameters:
        np.testing.assert_array_equal(resumed.parameters[name], expected.parameters[name])
    for group, params in expected.state.buffers.items():
        for name in params:
            np.testing.assert_array_equal(resumed.state.buffers[group][name], params[name])
    assert [h.round for h in resumed.history] == list(range(1, ROUNDS + 1))


def test_run_simulation_resume_keeps_simulated_client_state(tmp_path: Path) -> None:
    from fedloom import run_simulation

    cfg = _cfg("scaffold")
    expected = run_simulation(cfg)
    ckpt = tmp_path / "ckpt.safetensors"
    run_simulation(cfg.replace(rounds=STOP), checkpoint_path=ckpt)
    assert Path(f"{ckpt}.clients").exists()
    resumed = run_simulation(cfg, checkpoint_path=ckpt, resume=True)
    for name in expected.parameters:
        np.testing.assert_array_equal(resumed.parameters[name], expected.parameters[name])
