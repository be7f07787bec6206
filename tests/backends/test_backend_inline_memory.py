"""Inline simulation memory grows with the clients sampled in a round, not with those that exist."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import fedloom.app.build as simulation
from fedloom import RunConfig, build_simulation, run_simulation
from fedloom.torch.model_cache import ModelCache


def test_ten_thousand_clients_build_three_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12_600, 4)).astype(np.float32)
    data = tmp_path / "synthetic.npz"
    np.savez(data, x=x, y=(x[:, 0] > 0).astype(np.int64))
    built: list[nn.Module] = []
    real_build = simulation.build_model

    def counting_build(*args: object, **kwargs: object) -> nn.Module:
        built.append(real_build(*args, **kwargs))  # type: ignore[arg-type]
        return built[-1]

    monkeypatch.setattr(simulation, "build_model", counting_build)
    cfg = RunConfig(dataset=str(data), clients=10_000, fraction=0.002, rounds=2, partition="iid",
                    client_test_fraction=0.0, hidden=8, progress=False)
    result = run_simulation(cfg)
    assert [h.metrics["fit_clients"] for h in result.history] == [20.0, 20.0]
    # initial parameters, the central evaluation model, and one model that all 40 client tasks share
    assert len(built) == 3


def test_shared_model_gives_the_same_numbers_as_fresh_models() -> None:
    cfg = RunConfig(dataset="iris", clients=3, partition="iid", client_test_fraction=0.0, progress=False)
    sim = build_simulation(cfg)
    params = sim.initial_parameters
    shared = [sim.client_fn(c).fit(params, {"seed": 5, "lr": 0.1}) for c in "0120"]
    for cid, res in zip("0120", shared, strict=True):
        fresh = sim.client_fn(cid)
        fresh.model_fn = sim.model  # a brand-new module for this client only
        want = fresh.fit(params, {"seed": 5, "lr": 0.1})
        np.testing.assert_array_equal(res.parameters.flatten(), want.parameters.flatten())
    # results are copies: a later client reusing the module does not change an earlier result
    assert not np.array_equal(shared[0].parameters.flatten(), shared[1].parameters.flatten())
    np.testing.assert_array_equal(shared[0].parameters.flatten(), shared[3].parameters.flatten())


def test_model_cache_is_per_thread() -> None:
    cache = ModelCache(lambda: nn.Linear(2, 1))
    mine = cache()
    theirs: list[nn.Module] = []
    worker = threading.Thread(target=lambda: theirs.append(cache()))
    worker.start()
    worker.join()
    assert cache() is mine and theirs[0] is not mine and cache.builds == 2
