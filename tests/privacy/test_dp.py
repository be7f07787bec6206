"""Central DP (fixed and adaptive clipping), its composition with SecAgg+, and local DP."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.backends import InlinePool
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure
from fedloom.core.types import FitIns, FitRes
from fedloom.engine import FederatedLoop
from fedloom.errors import ConfigError
from fedloom.privacy.dp import CentralDP, LocalDPClient, adaptive_clip_step, update_noise_multiplier
from fedloom.privacy.secagg import SecAggPool
from fedloom.strategies import FedAvg

from .helpers import DeltaClient, secagg_clients


def results_for(deltas, glob):
    return [(str(i), FitRes(Parameters({"w": glob["w"] + d}), 10)) for i, d in enumerate(deltas)]


def test_central_dp_clips_and_divides_by_the_fixed_cohort():
    # Prepare: 3 of 4 sampled clients answer; clip 1
    glob = Parameters({"w": np.zeros(2)})
    dp = CentralDP(FedAvg(), noise_multiplier=0.0, clip=1.0)
    state = dp.initialize(glob)
    tasks = dp.configure_fit(state, 1, ["0", "1", "2", "3"])
    assert all(ins.config["dp_clip"] == 1.0 and ins.config["secagg_weighted"] is False for _, ins in tasks)
    # Execute: norms 5 (clipped to 1), 0.5, 0 (unweighted: examples do not matter)
    deltas = [np.array([3.0, 4.0]), np.array([0.3, 0.4]), np.zeros(2)]
    metrics = dp.aggregate_fit(state, 1, results_for(deltas, glob), [Failure("3", "gone")])
    # Assert: ([0.6, 0.8] + [0.3, 0.4] + 0) / 4
    assert np.allclose(state.parameters["w"], [0.225, 0.3])
    assert metrics["fit_clients"] == 3 and metrics["dp_noise_std"] == 0.0


def test_central_dp_noise_std_is_z_times_clip_over_cohort():
    glob = Parameters({"w": np.zeros(40_000)})
    dp = CentralDP(FedAvg(), noise_multiplier=2.0, clip=0.5)
    state = dp.initialize(glob, seed=3)
    dp.configure_fit(state, 1, ["0", "1", "2", "3"])
    dp.aggregate_fit(state, 1, results_for([np.zeros(40_000)] * 4, glob), [])
    assert np.std(state.parameters["w"]) == pytest.approx(2.0 * 0.5 / 4, rel=0.03)


def test_adaptive_clipping_tracks_the_target_quantile_within_50_rounds():
    # Update norms ~ LogNormal(0, 0.5): median exactly 1.0; start far below it.
    rng = np.random.default_rng(0)
    dp = CentralDP(FedAvg(), noise_multiplier=0.5, clip=0.1, adaptive=True, target_quantile=0.5)
    glob = Parameters({"w": np.zeros(4)})
    state = dp.initialize(glob, seed=1)
    cohort = [str(i) for i in range(100)]
    for rnd in range(1, 51):
        state.parameters = glob
        dp.configure_fit(state, rnd, cohort)
        norms = rng.lognormal(0.0, 0.5, size=100)
        directions = rng.normal(size=(100, 4))
        deltas = [n * d / np.linalg.norm(d) for n, d in zip(norms, directions, strict=True)]
        dp.aggregate_fit(state, rnd, results_for(deltas, glob), [])
    assert abs(state.components["central_dp"].clip - 1.0) < 0.1
    assert state.components["central_dp"].cohort == 100


def test_adaptive_step_and_noise_split_by_hand():
    new, frac = adaptive_clip_step(1.0, 30, 40, target_quantile=0.5, lr=0.2, count_stddev=0.0)
    assert frac == pytest.approx(0.75) and new == pytest.approx(np.exp(-0.2 * 0.25))
    assert update_noise_multiplier(1.0, 1.0) == pytest.approx((1 - 0.25) ** -0.5)
    with pytest.raises(ConfigError, match="leaves no budget"):
        update_noise_multiplier(3.0, 1.0)


@pytest.mark.parametrize(("noise", "adaptive"), [(0.0, False), (0.0, True), (0.8, True)])
def test_central_dp_over_secagg_equals_central_dp_in_the_clear(noise, adaptive):
    rng = np.random.default_rng(5)
    deltas = [rng.normal(0, 0.5, 50) * (1 + i % 3) for i in range(8)]  # norms around 3.5, 7, 10.6
    glob = Parameters({"w": np.zeros(50, np.float32)})

    def two_rounds(pool):  # the same (reproducible, not private) noise on both paths, so they can be compared
        dp = CentralDP(FedAvg(), noise_multiplier=noise, clip=5.0, adaptive=adaptive, reproducible_noise=True)
        result = FederatedLoop(dp, pool, num_rounds=2, seed=0).run(glob)
        return result.parameters["w"], result.state.components["central_dp"].clip, result.history[-1].metrics

    clear, clear_clip, clear_m = two_rounds(InlinePool(lambda cid: DeltaClient(deltas[int(cid)], 9), 8))
    secure_pool = SecAggPool(InlinePool(secagg_clients(deltas, [9] * 8), 8), clip=50.0)
    secure, secure_clip, secure_m = two_rounds(secure_pool)
    assert np.abs(secure - clear).max() < 1e-5
    assert np.abs(clear).max() > 0.01
    assert secure_clip == pytest.approx(clear_clip, rel=1e-6)
    if adaptive:  # 3 of 8 updates were within the clip norm 5: the secure count says the same
        assert clear_clip != 5.0
        assert secure_m["train_dp_unclipped"] == pytest.approx(clear_m["train_dp_unclipped"], abs=1e-6)


def test_local_dp_client_clips_then_adds_noise_of_the_right_size():
    glob = Parameters({"w": np.zeros(20_000, np.float32)})
    quiet = LocalDPClient(DeltaClient(np.full(20_000, 1.0), 5), clip=2.0, noise_multiplier=0.0)
    out = quiet.fit(glob, {"round": 1}).parameters["w"]
    assert np.linalg.norm(out) == pytest.approx(2.0, rel=1e-5)
    noisy = LocalDPClient(DeltaClient(np.zeros(20_000), 5), clip=2.0, noise_multiplier=1.5)
    assert np.std(noisy.fit(glob, {"round": 1}).parameters["w"]) == pytest.approx(3.0, rel=0.03)


def test_central_dp_refuses_non_fedavg():
    with pytest.raises(ConfigError):
        CentralDP(object(), noise_multiplier=1.0, clip=1.0)  # type: ignore[arg-type]


def test_fitins_carry_clip_to_secagg():
    dp = CentralDP(FedAvg(), noise_multiplier=1.0, clip=0.7)
    state = dp.initialize(Parameters({"w": np.zeros(1)}))
    (_, ins), = dp.configure_fit(state, 1, ["0"])
    assert isinstance(ins, FitIns) and ins.config["dp_clip"] == 0.7
