import numpy as np
import pytest

from fedloom import FedAvg, Parameters, simulate
from fedloom.core import EvaluateRes, FitRes
from fedloom.core.strategy import Failure, sample_clients
from fedloom.errors import ConfigError, RoundFailedError

GLOBAL = Parameters({"w": np.array([0.0, 0.0]), "b": np.array([1.0])})


def fit_results(*rows):
    return [(str(i), FitRes(Parameters({"w": np.array(w), "b": np.array([b])}), n, {"train_loss": loss}))
            for i, (w, b, n, loss) in enumerate(rows)]


def test_weighted_mean_by_hand():
    # Prepare: 3 clients with 1, 2 and 3 examples.
    strategy = FedAvg()
    state = strategy.initialize(GLOBAL)
    results = fit_results(([1.0, 2.0], 0.0, 1, 0.5), ([4.0, -2.0], 3.0, 2, 1.0), ([0.0, 6.0], 6.0, 3, 2.0))
    # Execute
    metrics = strategy.aggregate_fit(state, 1, results, [])
    # Assert: (1*1 + 2*4 + 3*0)/6 = 1.5; (1*2 + 2*-2 + 3*6)/6 = 16/6; b: (0 + 6 + 18)/6 = 4
    np.testing.assert_allclose(state.parameters["w"], [1.5, 16 / 6], rtol=0, atol=1e-12)
    np.testing.assert_allclose(state.parameters["b"], [4.0], rtol=0, atol=1e-12)
    assert metrics["train_loss"] == pytest.approx((0.5 + 2.0 + 6.0) / 6)
    assert metrics["fit_clients"] == 3


def test_unweighted_mean_by_hand():
    strategy = FedAvg(weighted=False)
    state = strategy.initialize(GLOBAL)
    strategy.aggregate_fit(state, 1, fit_results(([1.0, 2.0], 0.0, 1, 0), ([4.0, -2.0], 3.0, 9, 0)), [])
    np.testing.assert_allclose(state.parameters["w"], [2.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(state.parameters["b"], [1.5], atol=1e-12)


def test_keeps_dtypes_of_global_model():
    glob = Parameters({"w": np.zeros(2, np.float32), "n": np.array(0, np.int64)})
    strategy = FedAvg()
    state = strategy.initialize(glob)
    res = [("0", FitRes(Parameters({"w": np.ones(2, np.float32), "n": np.array(4, np.int64)}), 1)),
           ("1", FitRes(Parameters({"w": np.full(2, 3, np.float32), "n": np.array(5, np.int64)}), 1))]
    strategy.aggregate_fit(state, 1, res, [])
    assert state.parameters["w"].dtype == np.float32 and state.parameters["n"].dtype == np.int64
    np.testing.assert_array_equal(state.parameters["w"], [2, 2])
    assert int(state.parameters["n"]) in (4, 5)  # 4.5 rounds to even


def test_too_few_results_fail_the_round():
    strategy = FedAvg(min_fit_results=2)
    state = strategy.initialize(GLOBAL)
    with pytest.raises(RoundFailedError, match="1 valid results, 2 needed"):
        strategy.aggregate_fit(state, 1, fit_results(([1.0, 2.0], 0.0, 1, 0)), [Failure("1", "crashed")])


@pytest.mark.parametrize(("n", "fraction", "minimum", "expected"), [(10, 0.3, 1, 3), (10, 0.01, 2, 2), (10, 1.0, 1, 10),
                                                                      (7, 0.5, 1, 4)])
def test_sampling_size(n, fraction, minimum, expected):
    rng = np.random.default_rng(0)
    chosen = sample_clients(rng, [str(i) for i in range(n)], fraction, minimum)
    assert len(chosen) == expected == len(set(chosen))


def test_sampling_is_seeded_and_needs_enough_clients():
    ids = [str(i) for i in range(100)]
    a = sample_clients(np.random.default_rng(5), ids, 0.1, 1)
    b = sample_clients(np.random.default_rng(5), ids, 0.1, 1)
    assert a == b
    with pytest.raises(RoundFailedError, match="at least 3"):
        sample_clients(np.random.default_rng(0), ["0", "1"], 1.0, 3)


def test_federated_evaluation_is_example_weighted():
    strategy = FedAvg()
    state = strategy.initialize(GLOBAL)
    out = strategy.aggregate_evaluate(state, 1, [("0", EvaluateRes(1.0, 1, {"accuracy": 0.0})),
                                                 ("1", EvaluateRes(4.0, 3, {"accuracy": 1.0}))], [])
    assert out["loss"] == pytest.approx(13 / 4) and out["accuracy"] == pytest.approx(0.75)


@pytest.mark.parametrize("kwargs", [{"fraction_fit": 0.0}, {"fraction_fit": 1.5}, {"min_fit_clients": 0},
                                    {"fraction_evaluate": -0.1}])
def test_invalid_hyperparameters(kwargs):
    with pytest.raises(ConfigError):
        FedAvg(**kwargs)


def test_simulate_end_to_end_with_failing_and_nan_clients(fixed_client_cls):
    # Client 2 raises, client 3 sends NaN: both are failures; the others are averaged.
    def client_fn(cid):
        if cid == "2":
            raise RuntimeError("disk on fire")
        value = np.nan if cid == "3" else float(cid)
        return fixed_client_cls({"w": np.array([value, value]), "b": np.array([value])}, num_examples=1)

    result = simulate(client_fn, num_clients=4, strategy=FedAvg(), rounds=1, initial_parameters=GLOBAL)
    np.testing.assert_allclose(result.parameters["w"], [0.5, 0.5])
    assert result.history[0].metrics["fit_failures"] == 2


def test_one_clients_weight_is_capped_at_ten_times_the_median_claim_or_its_assigned_count() -> None:
    from fedloom.core.strategy import cap_weights

    assert cap_weights([10, 12, 9, 10**15], 10.0).tolist() == [10.0, 12.0, 9.0, 100.0]
    assert cap_weights([10, 10**15], 10.0).tolist() == [10.0, 100.0]  # the lower median: the outlier never sets it
    assert cap_weights([10, 10**15], 0.0).tolist() == [10.0, 1e15]  # 0 = off
    results = [(str(i), FitRes(Parameters({"w": np.zeros(1)}), n)) for i, n in enumerate([10, 12, 10**15])]
    assert FedAvg().client_weights(results).tolist() == [10.0, 12.0, 120.0]
    known = FedAvg(assigned_examples={"0": 10, "2": 11})  # simulation: the server gave client 2 eleven examples
    assert known.client_weights(results).tolist() == [10.0, 12.0, 11.0]
    assert FedAvg(weighted=False).client_weights(results).tolist() == [1.0, 1.0, 1.0]
    assert FedAvg(max_weight_ratio=0, assigned_examples={"2": 11}).client_weights(results).tolist() == [10, 12, 1e15]
    with pytest.raises(ConfigError, match="max_weight_ratio must be 0"):
        FedAvg(max_weight_ratio=0.5)


def test_an_update_longer_than_ten_median_norms_is_scaled_down() -> None:
    from fedloom.strategies.fedavg import bound_update_norms

    updates = [np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.array([3e38, 0.0])]
    out, n = bound_update_norms(updates, 10.0)
    assert n == 1 and out[2].tolist() == [20.0, 0.0] and out[0] is updates[0]
    assert bound_update_norms(updates, 0.0) == (updates, 0)
    big = np.full(4, 1e300)  # squares overflow float64: the norm is computed scaled
    assert bound_update_norms([np.ones(4), np.ones(4), big], 10.0)[0][2] == pytest.approx(np.full(4, 10.0))
    same = [np.zeros(3), np.zeros(3), np.ones(3)]  # the median client did not move: nothing to scale by
    assert bound_update_norms(same, 10.0)[1] == 0


def test_update_rows_and_norm_bounds_equal_the_plain_computation_bit_for_bit() -> None:
    """The fast aggregation path (one matrix, dot-product norms) gives exactly the numbers of the
    straightforward one (flatten each result, overflow-safe norm of every update)."""
    from fedloom.core.strategy import lower_median
    from fedloom.strategies.fedavg import _l2, bound_update_norms, update_rows

    rng = np.random.default_rng(7)
    shapes = {"w": ((5, 3), np.float32), "b": ((3,), np.float32), "steps": ((), np.int64), "mask": ((2,), np.bool_)}

    def params(scale: float) -> Parameters:
        return Parameters({k: (rng.normal(0, scale if dt == np.float32 else 1.0, s) if dt != np.bool_
                               else rng.random(s) > 0.5).astype(dt) for k, (s, dt) in shapes.items()})

    results = [params(1.0) for _ in range(6)] + [params(3e30)]  # the last one is an outlier to bound
    global_vec = params(1.0).flatten()
    fast = update_rows(results, global_vec)
    plain = [p.flatten() - global_vec for p in results]
    assert all(np.array_equal(a, b) for a, b in zip(fast, plain, strict=True))

    norms = np.array([_l2(u) for u in plain])
    bound = 10.0 * lower_median(norms)
    reference = [(u / np.max(np.abs(u))) * (bound / (n / np.max(np.abs(u)))) if n > bound else u
                 for u, n in zip(plain, norms, strict=True)]
    bounded, count = bound_update_norms(fast, 10.0)
    assert count == 1
    assert all(np.array_equal(a, b) for a, b in zip(bounded, reference, strict=True))
