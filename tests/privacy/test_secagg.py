"""SecAgg+ acceptance: exact recovery within the quantization bound, dropouts, failure, and masking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.engine import FederatedLoop
from fedloom.errors import ConfigError, RoundFailedError
from fedloom.privacy.secagg import Quantizer, SecAggPool, neighbour_graph
from fedloom.privacy.secagg.crypto import prg_mask
from fedloom.strategies import FedAvg

from .helpers import DropoutPool, secagg_clients

N, D, CLIP, CAP = 20, 1000, 10.0, 1000.0
K, T = 9, 5  # default degree for 20 clients and its majority threshold


def make_setup(seed: int = 0):
    rng = np.random.default_rng(seed)
    deltas = [rng.normal(0, 0.05, D) for _ in range(N)]
    deltas[7] *= 1000  # one update longer than the clip norm: clipped, not trusted as is
    counts = [int(c) for c in rng.integers(10, 200, N)]
    return deltas, counts


def run_round(drop: dict[str, set[str]], neighbours: int = 0):
    deltas, counts = make_setup()
    inner = DropoutPool(secagg_clients(deltas, counts), N, drop)
    pool = SecAggPool(inner, neighbours=neighbours, clip=CLIP, weight_cap=CAP, seed=0)
    glob = Parameters({"w": np.zeros(D, np.float32)})
    tasks = [(str(i), FitIns(glob, {"round": 1, "seed": i})) for i in range(N)]
    return pool, inner, pool.fit(tasks, expected=glob.spec()), deltas, counts


def plain_sum(deltas, counts, survivors):
    total = np.zeros(D)
    weight = 0.0
    for i in survivors:
        w = min(counts[i], CAP) / CAP
        norm = np.linalg.norm(deltas[i])
        total += w * (deltas[i] * min(1.0, CLIP / norm))
        weight += w
    return total, weight


def neighbours_of(client: int) -> list[int]:
    return [int(v) for v in neighbour_graph(N, K, np.random.default_rng([0, 1]))[client]]


@pytest.mark.parametrize("num_dropped", [0, 1, K - T])
def test_unmasked_sum_equals_plain_sum_within_quantization_bound(num_dropped):
    # Prepare: drop (after key sharing) the worst case: neighbours of one surviving client
    dropped = {str(v) for v in neighbours_of(0)[:num_dropped]}
    # Execute
    pool, _, out, deltas, counts = run_round({"mask": dropped})
    # Assert
    assert len(out.results) == 1
    res = out.results[0][1]
    survivors = [i for i in range(N) if str(i) not in dropped]
    expected_sum, expected_weight = plain_sum(deltas, counts, survivors)
    secure = res.extras["secagg_sum"]
    bound = Quantizer(32, N, CLIP).error_bound
    assert float(secure["error"][0]) == pytest.approx(bound)
    assert np.abs(secure["sum"] - expected_sum).max() <= bound
    assert abs(float(secure["weight"][0]) - expected_weight) <= bound
    mean = expected_sum / expected_weight
    assert np.abs(res.parameters["w"] - mean).max() <= 2 * bound / expected_weight + 1e-6
    assert res.num_examples == sum(counts[i] for i in survivors)
    assert res.metrics["secagg_dropouts"] == num_dropped
    assert res.metrics["secagg_unclipped"] == pytest.approx((len(survivors) - (7 in survivors)) / len(survivors))
    assert {f.cid for f in out.failures} == dropped


def test_complete_graph_recovers_dropouts_too():
    _, _, out, deltas, counts = run_round({"mask": {"3", "11"}}, neighbours=-1)
    survivors = [i for i in range(N) if i not in (3, 11)]
    expected_sum, _ = plain_sum(deltas, counts, survivors)
    secure_sum = out.results[0][1].extras["secagg_sum"]["sum"]
    assert np.abs(secure_sum - expected_sum).max() <= Quantizer(32, N, CLIP).error_bound


def test_one_dropout_more_than_allowed_fails_the_round_without_partial_result():
    dropped = {str(v) for v in neighbours_of(0)[: K - T + 1]}
    deltas, counts = make_setup()
    inner = DropoutPool(secagg_clients(deltas, counts), N, {"mask": dropped})
    pool = SecAggPool(inner, clip=CLIP, weight_cap=CAP, seed=0)
    glob = Parameters({"w": np.zeros(D, np.float32)})
    with pytest.raises(RoundFailedError, match="aborted, no partial aggregate used.*threshold 5"):
        pool.fit([(str(i), FitIns(glob, {"round": 1, "seed": i})) for i in range(N)], expected=glob.spec())
    # Through the round loop: the run stops, the global model is untouched.
    loop = FederatedLoop(FedAvg(), pool, num_rounds=1, seed=0)
    state = FedAvg().initialize(glob)
    with pytest.raises(RoundFailedError):
        loop.run(state=state)
    assert state.round == 0 and np.array_equal(state.parameters["w"], glob["w"])


def test_vectors_the_server_receives_look_uniform_and_uncorrelated():
    _, inner, _, deltas, _ = run_round({})
    masked = [(int(cid), res.extras["secagg"]["masked"]) for stage, cid, _, res in inner.seen if stage == "mask"]
    assert len(masked) == N and masked[0][1].dtype == np.uint32
    values = np.concatenate([m for _, m in masked]).astype(np.uint64)
    for residues in (values % 256, values >> np.uint64(24)):  # low and high bits
        counts = np.bincount(residues.astype(np.int64), minlength=256)
        assert stats.chisquare(counts).pvalue > 1e-4
    q = Quantizer(32, N, CLIP)
    for i, vec in masked:
        r = np.corrcoef(q.decode(vec[:D]), deltas[i])[0, 1]
        assert abs(r) < 5 / np.sqrt(D)
    # The same statistic sees the unmasked encoding at once (so the test can fail).
    plain = q.decode(q.encode(deltas[0], np.random.default_rng(0)))
    assert np.corrcoef(plain, deltas[0])[0, 1] > 0.99


def test_dropouts_before_sharing_just_leave_the_round():
    _, _, out, deltas, counts = run_round({"advertise": {"2"}, "share": {"5"}})
    survivors = [i for i in range(N) if i not in (2, 5)]
    expected_sum, _ = plain_sum(deltas, counts, survivors)
    res = out.results[0][1]
    assert res.metrics["secagg_survivors"] == N - 2 and res.metrics["secagg_dropouts"] == 0
    assert np.abs(res.extras["secagg_sum"]["sum"] - expected_sum).max() <= Quantizer(32, N, CLIP).error_bound


def test_quantizer_never_overflows_and_refuses_a_too_small_ring():
    q = Quantizer(bits=16, num_clients=50, bound=1.0)
    assert q.dtype == np.uint16
    worst = [q.encode(np.full(4, sign * 1.0), np.random.default_rng(i)) for i, sign in enumerate([1.0] * 50)]
    total = worst[0]
    for w in worst[1:]:
        total = q.add(total, w)
    assert np.allclose(q.decode(total), 50.0, atol=q.error_bound)
    with pytest.raises(ConfigError, match="cannot hold the sum of 50000 clients"):
        Quantizer(bits=16, num_clients=50_000, bound=1.0)
    assert Quantizer(bits=8, num_clients=2, bound=1.0).dtype == np.uint8
    assert Quantizer(bits=33, num_clients=2, bound=1.0).dtype == np.uint64


def test_prg_is_deterministic_per_seed_and_differs_across_seeds():
    a, b = prg_mask(bytes(32), 1000, 32), prg_mask(bytes(31) + b"\x01", 1000, 32)
    assert np.array_equal(a, prg_mask(bytes(32), 1000, 32))
    assert not np.array_equal(a, b)
    assert prg_mask(bytes(32), 10, 12).max() < 2**12


def test_a_client_lost_during_unmask_still_counts_and_its_peers_are_recovered():
    # Client 4 sent its masked input and then vanished: its update is in the sum, and the others'
    # self-masks are rebuilt from the remaining share holders.
    _, _, out, deltas, counts = run_round({"mask": {"9"}, "unmask": {"4"}})
    survivors = [i for i in range(N) if i != 9]
    expected_sum, _ = plain_sum(deltas, counts, survivors)
    res = out.results[0][1]
    assert res.metrics["secagg_survivors"] == N - 1
    assert np.abs(res.extras["secagg_sum"]["sum"] - expected_sum).max() <= Quantizer(32, N, CLIP).error_bound
