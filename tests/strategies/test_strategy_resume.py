"""A run stopped and resumed from its checkpoint ends with the same parameters as an uninterrupted
run: optimizer moments and control variates travel in the checkpointed ServerState."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedloom import FederatedLoop, Parameters, RunConfig, build_simulation
from fedloom.backends import InlinePool


def _fields(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every leaf field of a component, with its path (records and tuples are walked)."""
    if isinstance(value, tuple) and hasattr(type(value), "_fields"):
        for name in type(value)._fields:
            yield from _fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            yield from _fields(item, f"{path}[{i}]")
    elif isinstance(value, Parameters):
        for name, arr in value.items():
            yield f"{path}[{name!r}]", arr
    else:
        yield path, value

ROUNDS, STOP = 4, 2


def _cfg(strategy: str, **extra: Any) -> RunConfig:
    return RunConfig(dataset="iris", model="linear", clients=4, fraction=0.5, rounds=ROUNDS, strategy=strategy,
                     partition="iid", local_epochs=1, batch_size=8, progress=False, seed=3, **extra)


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("fedadam", {}),
        ("fedyogi", {}),
        ("fedadagrad", {}),
        ("fedavgm", {}),
        ("scaffold", {}),
        # server noise and an adaptive clip norm: the RNG, the central_dp component and the DP ledger
        # resume too. Comparing two runs needs the same noise: the explicit (not private) reproducible mode.
        ("fedavgm", {"dp": "central-adaptive", "noise_multiplier": 0.8, "clip": 0.5,
                     "dp_insecure_reproducible_noise": True}),
    ],
)
def test_resume_equals_uninterrupted(strategy: str, extra: dict[str, Any], tmp_path: Path) -> None:
    cfg = _cfg(strategy, **extra)
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

    assert set(resumed.state.components) == set(expected.state.components)
    for name in expected.parameters:
        np.testing.assert_array_equal(resumed.parameters[name], expected.parameters[name])
    want = {path: v for name, c in expected.state.components.items() for path, v in _fields(c, name)}
    got = {path: v for name, c in resumed.state.components.items() for path, v in _fields(c, name)}
    assert set(got) == set(want) and want
    for path, value in want.items():
        assert type(got[path]) is type(value), path
        np.testing.assert_array_equal(got[path], value, err_msg=path)
        if isinstance(value, np.ndarray):
            assert got[path].dtype == value.dtype and got[path].shape == value.shape, path
    for name, component in expected.state.components.items():
        assert type(resumed.state.components[name]) is type(component)
    assert [h.round for h in resumed.history] == list(range(1, ROUNDS + 1))


def test_run_simulation_resume_keeps_simulated_client_state(tmp_path: Path) -> None:
    from fedloom import run_simulation

    cfg = _cfg("scaffold")
    expected = run_simulation(cfg)
    ckpt = tmp_path / "ckpt.safetensors"
    run_simulation(cfg.replace(rounds=STOP), checkpoint_path=ckpt)
    # the clients' state (SCAFFOLD's c_i) is saved inside the checkpoint, in the same atomic write
    from fedloom.core import ClientStateStore
    from fedloom.engine import load_client_states

    saved = ClientStateStore()
    assert load_client_states(ckpt, saved) and saved.nbytes > 0
    resumed = run_simulation(cfg, checkpoint_path=ckpt, resume=True)
    for name in expected.parameters:
        np.testing.assert_array_equal(resumed.parameters[name], expected.parameters[name])
