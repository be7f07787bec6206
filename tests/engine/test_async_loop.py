"""The asynchronous loop: staleness weighting, version bookkeeping, dropping, FedAsync mixing, resume,
and equality with synchronous FedAvg when nothing is asynchronous."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from fedloom.core.parameters import Parameters
from fedloom.core.pool import PoolResult
from fedloom.core.types import ClientId, FitIns, FitRes
from fedloom.engine.async_loop import AsyncLoop, VirtualDriver
from fedloom.errors import ConfigError
from fedloom.strategies import FedAvg
from fedloom.strategies.staleness import staleness_fn


class Offsets:
    """Client ``i`` returns the model it got plus ``offsets[i]`` (one example each), and records versions."""

    def __init__(self, offsets: dict[str, float]) -> None:
        self.offsets = offsets
        self.seen: list[tuple[str, int]] = []

    def available(self) -> list[ClientId]:
        return sorted(self.offsets)

    def fit(self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected, timeout) -> PoolResult[FitRes]:
        out: PoolResult[FitRes] = PoolResult()
        for cid, ins in tasks:
            self.seen.append((cid, int(ins.config["model_version"])))
            w = ins.parameters["w"] + self.offsets[cid]
            out.results.append((cid, FitRes(Parameters({"w": w}), 1, {})))
        return out

    def evaluate(self, tasks, *, timeout):
        return PoolResult()

    def close(self) -> None:
        pass


class Durations:
    """Fixed virtual duration per client; everyone always available."""

    def __init__(self, durations: dict[str, float]) -> None:
        self.durations = durations

    def duration_s(self, cid, ins, res):
        return self.durations[cid]

    def is_available(self, cid, t):
        return True

    def next_change(self, t):
        return t + 1.0


def _loop(pool, durations, **kw) -> AsyncLoop:
    strategy = FedAvg(max_norm_ratio=0, max_weight_ratio=0)
    return AsyncLoop(strategy, pool, driver=VirtualDriver(Durations(durations)), **kw)


START = Parameters({"w": np.zeros(1)})


def test_staleness_functions_by_hand():
    assert staleness_fn("constant")(7) == 1.0
    poly = staleness_fn("poly:0.5")
    assert poly(0) == 1.0 and poly(3) == 0.5 and poly(8) == pytest.approx(1 / 3)
    hinge = staleness_fn("hinge:10,4")
    assert hinge(4) == 1.0 and hinge(5) == pytest.approx(1 / 11) and hinge(6) == pytest.approx(1 / 21)
    for bad in ("poly:x", "nope", "poly:-1", "hinge:1,2,3"):
        with pytest.raises(ConfigError):
            staleness_fn(bad)


def test_fedbuff_discounts_stale_updates_by_hand():
    # a: fast (1s, +1), b: slow (2.5s, +10). Buffer 2, concurrency 2, poly:1 -> weight 1/(1+s).
    pool = Offsets({"a": 1.0, "b": 10.0})
    loop = _loop(pool, {"a": 1.0, "b": 2.5}, num_updates=2, buffer_size=2, concurrency=2,
                 staleness=staleness_fn("poly:1"))
    result = loop.run(START)
    # t=1: a (v0) arrives; a re-dispatched on v0. t=2: a (v0) arrives -> buffer [a, a] -> update 1: mean(+1, +1) = 1.
    # t=2.5: b (v0, staleness 1, weight 1/2) arrives; t=3: a (v1, staleness 0, weight 1) -> update 2:
    # delta = (0.5 * 10 + 1 * 1) / (0.5 + 1) * ((0.5 + 1) / 2) = 3 -> w = 4
    assert result.parameters["w"][0] == pytest.approx(4.0)
    first, second = result.history
    assert first.metrics["staleness_max"] == 0 and second.metrics["staleness_max"] == 1
    assert second.metrics["staleness_mean"] == 0.5 and second.metrics["client_updates"] == 4
    assert second.metrics["virtual_time_s"] == 3.0
    assert ("b", 0) in pool.seen and ("a", 1) in pool.seen  # each task went out with its model version


def test_update_staler_than_max_staleness_is_dropped_and_counted():
    pool = Offsets({"a": 1.0, "b": 100.0})
    loop = _loop(pool, {"a": 1.0, "b": 3.5}, num_updates=4, buffer_size=1, concurrency=2,
                 staleness=staleness_fn("constant"), max_staleness=1)
    result = loop.run(START)
    # b's update (v0) arrives at t=3.5, three versions later: dropped; every update is a's +1
    assert result.parameters["w"][0] == pytest.approx(4.0)
    assert result.history[-1].metrics["dropped_stale"] == 1
    assert result.history[-1].metrics["client_updates"] == 4


def test_without_max_staleness_the_slow_update_counts():
    pool = Offsets({"a": 1.0, "b": 100.0})
    loop = _loop(pool, {"a": 1.0, "b": 3.5}, num_updates=4, buffer_size=1, concurrency=2,
                 staleness=staleness_fn("constant"))
    result = loop.run(START)
    assert result.parameters["w"][0] == pytest.approx(103.0)  # a, a, a (t=1,2,3), then b (+100, stale 3) at 3.5
    assert result.history[-1].metrics["dropped_stale"] == 0


def test_fedasync_mixes_each_arrival_by_hand():
    pool = Offsets({"a": 1.0, "b": 10.0})
    loop = _loop(pool, {"a": 1.0, "b": 1.5}, num_updates=2, concurrency=2, aggregation="fedasync", alpha=0.5,
                 staleness=staleness_fn("poly:1"))
    result = loop.run(START)
    # t=1: a (v0 -> 0+1): w = 0.5 * 0 + 0.5 * 1 = 0.5. t=1.5: b (v0 -> 10), staleness 1: a = 0.25,
    # w = 0.75 * 0.5 + 0.25 * 10 = 2.875
    assert result.parameters["w"][0] == pytest.approx(2.875)


def test_async_with_buffer_equal_to_concurrency_and_cohort_is_synchronous_fedavg():
    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    base = dict(dataset="iris", clients=6, rounds=3, fraction=0.5, progress=False, seed=3)
    sync = run_simulation(RunConfig(**base))
    asyn = run_simulation(RunConfig(**base, mode="async", buffer_size=3, concurrency=3, seconds_per_example=0.0))
    assert sync.parameters.names == asyn.parameters.names
    for name in sync.parameters.names:
        np.testing.assert_array_equal(sync.parameters[name], asyn.parameters[name])
    assert [h.metrics["accuracy"] for h in sync.history] == [h.metrics["accuracy"] for h in asyn.history]
    # and with unequal speeds it is not: the cohort no longer moves in lockstep
    skewed = run_simulation(RunConfig(**base, mode="async", buffer_size=3, concurrency=3,
                                      device_speed="lognormal:1.0"))
    assert not all(np.array_equal(sync.parameters[n], skewed.parameters[n]) for n in sync.parameters.names)


def test_async_checkpoint_and_resume_are_exact(tmp_path):
    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    cfg = dict(dataset="iris", clients=8, fraction=0.5, progress=False, seed=1, mode="async", buffer_size=2,
               concurrency=4, device_speed="lognormal:1.0", availability="onoff", staleness="poly:0.5")
    whole = run_simulation(RunConfig(**cfg, rounds=6))
    ckpt = tmp_path / "checkpoint.safetensors"
    run_simulation(RunConfig(**cfg, rounds=3), checkpoint_path=ckpt)
    resumed = run_simulation(RunConfig(**cfg, rounds=6), checkpoint_path=ckpt, resume=True)
    for name in whole.parameters.names:
        np.testing.assert_array_equal(whole.parameters[name], resumed.parameters[name])
    keys = ("virtual_time_s", "client_updates", "staleness_mean", "accuracy")
    assert [[h.metrics[k] for k in keys] for h in whole.history] == [[h.metrics[k] for k in keys]
                                                                     for h in resumed.history]


def test_async_loop_needs_a_fedavg_family_strategy():
    class NotFedAvg:
        pass

    with pytest.raises(ConfigError, match="FedAvg-family"):
        AsyncLoop(NotFedAvg(), Offsets({"a": 1.0}), num_updates=1)  # type: ignore[arg-type]


def test_async_mode_refuses_dp_and_secagg_with_a_reason():
    from fedloom.app.config import RunConfig

    with pytest.raises(ConfigError, match="--mode async does not support"):
        RunConfig(dataset="iris", mode="async", dp="central", noise_multiplier=1.0).validate()
    with pytest.raises(ConfigError, match="--mode async does not support"):
        RunConfig(dataset="iris", mode="async", secagg=True).validate()
    with pytest.raises(ConfigError, match="FedAvg-family"):
        RunConfig(dataset="iris", mode="async", strategy="scaffold").validate()


def test_fedbuff_composes_with_a_robust_aggregator_and_a_server_optimizer():
    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    base = dict(dataset="iris", clients=6, rounds=3, progress=False, seed=2, mode="async", buffer_size=3,
                concurrency=4, device_speed="lognormal:1.0")
    plain = run_simulation(RunConfig(**base))
    composed = run_simulation(RunConfig(**base, aggregator="median", server_opt="adam", server_lr=0.01))
    assert "server_opt" in composed.state.components and type(composed.state.components["server_opt"]).__name__ \
        != type(plain.state.components["server_opt"]).__name__
    assert not all(np.array_equal(plain.parameters[n], composed.parameters[n]) for n in plain.parameters.names)
    assert composed.history[-1].metrics["client_updates"] == 9


def test_server_mode_async_in_a_deployment_toml_reaches_the_experiment_and_its_rules(tmp_path):
    from fedloom.net import load_deployment

    path = tmp_path / "deploy.toml"
    path.write_text('dataset = "iris"\nbuffer_size = 3\n\n[server]\nmode = "async"\n')
    cfg, scfg, _ = load_deployment(path)
    assert scfg.mode == "async" and cfg.asynchrony.mode == "async" and cfg.asynchrony.buffer_size == 3
    path.write_text('dataset = "iris"\nsecagg = true\n\n[server]\nmode = "async"\n')
    with pytest.raises(ConfigError, match="--mode async does not support"):
        load_deployment(path)
    path.write_text('dataset = "iris"\n\n[server]\nmode = "later"\n')
    with pytest.raises(ConfigError, match="mode must be 'sync' or 'async'"):
        load_deployment(path)


class Liar(Offsets):
    """Plays the attacker: claims in its result (metrics and config echo) that it trained on the newest model."""

    def fit(self, tasks, *, expected, timeout):
        out = super().fit(tasks, expected=expected, timeout=timeout)
        out.results = [(cid, FitRes(res.parameters, res.num_examples, {"model_version": 10**6}))
                       for cid, res in out.results]
        return out


def test_a_client_cannot_hide_its_staleness_by_claiming_a_newer_model_version():
    # the same run as the drop test, but b says its stale update is fresh: the server's own per-task
    # record decides, so b's +100 is still dropped
    pool = Liar({"a": 1.0, "b": 100.0})
    loop = _loop(pool, {"a": 1.0, "b": 3.5}, num_updates=4, buffer_size=1, concurrency=2,
                 staleness=staleness_fn("constant"), max_staleness=1)
    result = loop.run(START)
    assert result.parameters["w"][0] == pytest.approx(4.0)
    assert result.history[-1].metrics["dropped_stale"] == 1
