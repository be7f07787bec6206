"""Heterogeneous fleets: seeded device speeds, availability, bandwidth, and the synchronous virtual clock."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.core.parameters import Parameters
from fedloom.core.pool import PoolResult
from fedloom.core.types import FitIns, FitRes
from fedloom.errors import ConfigError
from fedloom.scenarios.heterogeneity import Heterogeneity
from fedloom.scenarios.virtual_clock import VirtualClockPool


def test_lognormal_speeds_are_seeded_and_spread_by_sigma():
    a = Heterogeneity(500, device_speed="lognormal:1.0", seed=4)
    b = Heterogeneity(500, device_speed="lognormal:1.0", seed=4)
    c = Heterogeneity(500, device_speed="lognormal:2.0", seed=4)
    np.testing.assert_array_equal(a.slowness, b.slowness)
    assert np.median(a.slowness) == pytest.approx(1.0, rel=0.2)
    assert np.std(np.log(c.slowness)) == pytest.approx(2 * np.std(np.log(a.slowness)), rel=0.01)
    assert not np.array_equal(a.slowness, Heterogeneity(500, device_speed="lognormal:1.0", seed=5).slowness)


def test_compute_and_transfer_time():
    h = Heterogeneity(2, seconds_per_example=0.01, bandwidth_mbps=8.0)
    assert h.compute_s("1", 100, epochs=2) == pytest.approx(2.0)
    assert h.transfer_s(1_000_000) == pytest.approx(1.0)
    ins = FitIns(Parameters({"w": np.zeros(125_000)}), {"local_epochs": 1})  # 1 MB down
    res = FitRes(Parameters({"w": np.zeros(125_000)}), 50)  # 1 MB up
    assert h.duration_s("0", ins, res) == pytest.approx(0.5 + 2.0)


def test_trace_file_sets_each_clients_slowness(tmp_path):
    trace = tmp_path / "speeds.txt"
    trace.write_text("1\n4\n0.5\n")
    h = Heterogeneity(4, device_speed=f"trace:{trace}")
    assert h.slowness.tolist() == [1.0, 4.0, 0.5, 1.0]
    trace.write_text("1\n-2\n")
    with pytest.raises(ConfigError, match="> 0"):
        Heterogeneity(2, device_speed=f"trace:{trace}")


def test_onoff_keeps_the_asked_fraction_unavailable_and_next_change_flips_someone():
    h = Heterogeneity(2000, availability="onoff", unavailable=0.2, period_s=100.0, seed=1)
    for t in (0.0, 37.0, 1234.5):
        off = np.mean([not h.is_available(str(i), t) for i in range(2000)])
        assert off == pytest.approx(0.2, abs=0.03)
    t = 10.0
    nxt = h.next_change(t)
    assert nxt > t
    before = [h.is_available(str(i), t) for i in range(2000)]
    after = [h.is_available(str(i), nxt + 1e-9) for i in range(2000)]
    assert before != after
    assert all(Heterogeneity(3, availability="always").is_available(str(i), 5.0) for i in range(3))


class _Pool:
    def available(self):
        return ["0", "1", "2"]

    def fit(self, tasks, *, expected, timeout):
        return PoolResult(results=[(cid, FitRes(ins.parameters, 10 * (int(cid) + 1))) for cid, ins in tasks])

    def evaluate(self, tasks, *, timeout):
        return PoolResult()

    def close(self):
        pass


def test_synchronous_round_waits_for_the_slowest_or_the_deadline():
    fleet = Heterogeneity(3, seconds_per_example=0.1)
    tasks = [(str(i), FitIns(Parameters({"w": np.zeros(1)}))) for i in range(3)]
    pool = VirtualClockPool(_Pool(), fleet)
    out = pool.fit(tasks, expected=None, timeout=None)
    assert pool.virtual_time_s == pytest.approx(3.0) and len(out.results) == 3  # client 2: 30 examples x 0.1 s
    late = VirtualClockPool(_Pool(), fleet, deadline_s=2.5, start_s=10.0)
    out = late.fit(tasks, expected=None, timeout=None)
    assert late.virtual_time_s == pytest.approx(12.5)
    assert [c for c, _ in out.results] == ["0", "1"] and [f.cid for f in out.failures] == ["2"]


def test_sync_run_history_carries_virtual_time_only_with_a_fleet():
    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    base = dict(dataset="iris", clients=4, rounds=2, progress=False)
    plain = run_simulation(RunConfig(**base))
    assert "virtual_time_s" not in plain.history[-1].metrics
    hetero = run_simulation(RunConfig(**base, device_speed="lognormal:1.0", availability="onoff"))
    times = [h.metrics["virtual_time_s"] for h in hetero.history]
    assert 0 < times[0] < times[1]


def test_runs_plot_accuracy_against_virtual_time_when_history_has_it(tmp_path):
    from fedloom.runs.plots import write_plots

    history = [{"round": 1, "accuracy": 0.5, "virtual_time_s": 3.0},
               {"round": 2, "accuracy": 0.7, "virtual_time_s": 9.0}]
    assert tmp_path / "accuracy_vs_virtual_time.png" in write_plots(history, tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    write_plots([{"round": 1, "accuracy": 0.5}], plain)
    assert (plain / "accuracy.png").exists() and not (plain / "accuracy_vs_virtual_time.png").exists()
