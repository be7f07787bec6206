"""Client sampling schemes (uniform, size-proportional, Poisson) and the weighting option.

Statistical tests use a fixed seed and the significance level ALPHA = 0.001: a correct sampler
fails one of them with probability 0.001 for a random seed, and never for the fixed one; each has a
negative control showing that the same test rejects a wrong sampler.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from fedloom import FedAvg, Parameters
from fedloom.app.config import RunConfig
from fedloom.app.rules import broken
from fedloom.core import FitRes
from fedloom.core.sampling import sample_cohort
from fedloom.errors import ConfigError

ALPHA = 0.001
CLIENTS = [str(i) for i in range(8)]
SIZES = dict(zip(CLIENTS, [1, 2, 3, 5, 8, 13, 21, 47], strict=True))


def _draw_counts(strategy: FedAvg, rounds: int, seed: int = 0) -> Counter:
    state = strategy.initialize(Parameters({"w": np.zeros(1)}), seed=seed)
    total: Counter = Counter()
    for rnd in range(1, rounds + 1):
        tasks = strategy.configure_fit(state, rnd, CLIENTS)
        draws = strategy.draws(rnd)
        total.update({cid: draws.get(cid, 1) for cid, _ in tasks})
    return total


def test_size_sampling_frequencies_match_client_shares():
    # 2,000 rounds of K = 5 draws: 10,000 draws, expected n_k / n of them for client k.
    strategy = FedAvg(sampling="size", fraction_fit=5 / 8, assigned_examples=SIZES)
    counts = _draw_counts(strategy, 2000)
    observed = np.array([counts[c] for c in CLIENTS], dtype=float)
    assert observed.sum() == 10_000  # every draw counted, duplicates included
    p = np.array([SIZES[c] for c in CLIENTS], dtype=float) / sum(SIZES.values())
    assert stats.chisquare(observed, observed.sum() * p).pvalue > ALPHA


def test_the_chi_square_test_rejects_uniform_sampling():
    # Negative control: uniform sampling's frequencies are far from n_k / n, and the same test says so.
    counts = _draw_counts(FedAvg(fraction_fit=5 / 8), 2000)
    observed = np.array([counts[c] for c in CLIENTS], dtype=float)
    p = np.array([SIZES[c] for c in CLIENTS], dtype=float) / sum(SIZES.values())
    assert stats.chisquare(observed, observed.sum() * p).pvalue < 1e-12


def _poisson_sizes(strategy: FedAvg, n: int, rounds: int) -> np.ndarray:
    clients = [str(i) for i in range(n)]
    state = strategy.initialize(Parameters({"w": np.zeros(1)}), seed=3)
    return np.array([len(strategy.configure_fit(state, rnd, clients)) for rnd in range(1, rounds + 1)])


def _binomial_pvalue(sizes: np.ndarray, n: int, q: float) -> float:
    # Chi-square goodness of fit against Binomial(n, q), tails pooled so every bin expects >= 5.
    expected = stats.binom.pmf(np.arange(n + 1), n, q) * len(sizes)
    observed = np.bincount(sizes, minlength=n + 1).astype(float)
    lo = int(np.argmax(np.cumsum(expected) >= 5))
    hi = n - int(np.argmax(np.cumsum(expected[::-1]) >= 5))
    obs = np.concatenate([[observed[: lo + 1].sum()], observed[lo + 1 : hi], [observed[hi:].sum()]])
    exp = np.concatenate([[expected[: lo + 1].sum()], expected[lo + 1 : hi], [expected[hi:].sum()]])
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


def test_poisson_cohort_sizes_are_binomial():
    sizes = _poisson_sizes(FedAvg(sampling="poisson", fraction_fit=0.2), 50, 4000)
    assert _binomial_pvalue(sizes, 50, 0.2) > ALPHA
    assert sizes.mean() == pytest.approx(10, abs=0.2)


def test_the_binomial_test_rejects_fixed_size_cohorts():
    sizes = _poisson_sizes(FedAvg(fraction_fit=0.2), 50, 4000)  # always 10
    assert _binomial_pvalue(sizes, 50, 0.2) < 1e-12


def _results(models: list[list[float]], counts: list[int]) -> list[tuple[str, FitRes]]:
    return [(str(i), FitRes(Parameters({"w": np.array(m)}), n, {})) for i, (m, n) in
            enumerate(zip(models, counts, strict=True))]


def test_uniform_weighting_gives_the_plain_mean_of_the_returned_models():
    # Built from the config, as `--weighting uniform` builds it; example counts 1, 5 and 94 are ignored.
    from fedloom.app.build import build_simulation

    sim = build_simulation(RunConfig(dataset="iris", model="linear", clients=3, weighting="uniform"))
    strategy = sim.strategy
    assert isinstance(strategy, FedAvg) and not strategy.weighted
    strategy.max_norm_ratio = 0.0  # the norm bound (a defence) is not what this test is about
    models = [[1.0, 0.0], [2.0, 4.0], [6.0, -1.0]]
    state = strategy.initialize(Parameters({"w": np.zeros(2)}))
    strategy.aggregate_fit(state, 1, _results(models, [1, 5, 94]), [])
    np.testing.assert_allclose(state.parameters["w"], np.mean(models, axis=0), rtol=0, atol=1e-12)
    # and with the default weighting the same results give the example-weighted mean
    weighted = build_simulation(RunConfig(dataset="iris", model="linear", clients=3)).strategy
    weighted.max_norm_ratio = weighted.max_weight_ratio = 0.0
    state = weighted.initialize(Parameters({"w": np.zeros(2)}))
    weighted.aggregate_fit(state, 1, _results(models, [1, 5, 94]), [])
    np.testing.assert_allclose(state.parameters["w"], np.average(models, axis=0, weights=[1, 5, 94]), atol=1e-12)


def test_a_client_drawn_twice_counts_twice():
    strategy = FedAvg(sampling="size", weighted=False, fraction_fit=1.0, assigned_examples={"0": 1, "1": 1, "2": 1},
                      max_norm_ratio=0.0)
    state = strategy.initialize(Parameters({"w": np.zeros(1)}), seed=0)
    for rnd in range(1, 50):  # find a round with a duplicate draw
        tasks = strategy.configure_fit(state, rnd, ["0", "1", "2"])
        draws = strategy.draws(rnd)
        if max(draws.values()) > 1:
            break
    assert sum(draws.values()) == 3 and len(tasks) == len(draws) < 3  # one task per distinct client
    results = [(cid, FitRes(Parameters({"w": np.array([float(cid)])}), 1, {})) for cid, _ in tasks]
    strategy.aggregate_fit(state, rnd, results, [])
    expected = sum(float(cid) * k for cid, k in draws.items()) / 3  # the plain mean of the 3 draws
    np.testing.assert_allclose(state.parameters["w"], [expected], atol=1e-12)


def test_an_empty_poisson_cohort_leaves_the_model_unchanged():
    strategy = FedAvg(sampling="poisson", fraction_fit=1e-9)
    state = strategy.initialize(Parameters({"w": np.ones(2)}))
    assert strategy.configure_fit(state, 1, ["0", "1", "2"]) == []
    assert strategy.aggregate_fit(state, 1, [], [])["fit_clients"] == 0
    np.testing.assert_array_equal(state.parameters["w"], np.ones(2))


def test_size_sampling_needs_the_client_sizes():
    strategy = FedAvg(sampling="size")
    with pytest.raises(ConfigError, match="example count.*deployed server does not"):
        strategy.configure_fit(strategy.initialize(Parameters()), 1, ["0", "1"])
    with pytest.raises(ConfigError, match="sampling must be one of"):
        FedAvg(sampling="stratified")
    with pytest.raises(ConfigError, match="unknown sampling scheme"):
        sample_cohort(np.random.default_rng(0), ["0"], scheme="x", fraction=1.0, min_clients=1)


def test_default_sampling_is_unchanged():
    # Cohorts drawn by FedAvg before the sampling schemes existed (recorded on main at 1121e58).
    strategy = FedAvg(fraction_fit=0.3, min_fit_clients=2)
    state = strategy.initialize(Parameters(), seed=11)
    clients = [str(i) for i in range(20)]
    assert [[c for c, _ in strategy.configure_fit(state, r, clients)] for r in range(1, 5)] == [
        ["2", "8", "11", "12", "13", "15"], ["1", "2", "8", "9", "13", "15"],
        ["2", "5", "7", "8", "11", "18"], ["7", "8", "10", "15", "16", "19"]]


def test_default_run_is_bit_identical_to_before():
    # The final parameters of a short seeded run, hashed on main at 1121e58 before the sampling schemes.
    from fedloom.app.build import run_simulation

    cfg = RunConfig(dataset="iris", model="linear", clients=10, fraction=0.3, rounds=4, seed=7, partition="dirichlet")
    flat = np.ascontiguousarray(run_simulation(cfg).parameters.flatten())
    assert hashlib.sha256(flat.tobytes()).hexdigest() == (
        "b823bac08ed75cff16047a87ca9f6dbc6f74f7e2f281d47007d2c2b6c3f65b34")


def test_size_and_poisson_sampling_run_end_to_end():
    from fedloom.app.build import run_simulation

    for sampling in ("size", "poisson"):
        cfg = RunConfig(dataset="iris", model="linear", clients=6, fraction=0.5, rounds=3, seed=1, sampling=sampling,
                        weighting="uniform")
        result = run_simulation(cfg)
        assert len(result.history) == 3 and np.isfinite(result.parameters.flatten()).all()


@pytest.mark.parametrize(("sampling", "refused"), [("", False), ("poisson", False), ("uniform", True), ("size", True)])
def test_central_dp_takes_poisson_sampling_only(sampling, refused):
    cfg = RunConfig(dataset="iris", clients=10, dp="central", noise_multiplier=1.0, sampling=sampling)
    names = [r.name for r in broken(cfg)]
    assert ("central-dp-sampling" in names) is refused


def test_size_sampling_refused_under_a_secure_sum():
    names = [r.name for r in broken(RunConfig(dataset="iris", clients=4, secagg=True, sampling="size"))]
    assert "sampling-size-secure-sum" in names
    assert not broken(RunConfig(dataset="iris", clients=4, sampling="size"))


def test_central_dp_message_names_the_accountants_assumption():
    cfg = RunConfig(dataset="iris", clients=10, dp="central", noise_multiplier=1.0, sampling="size")
    with pytest.raises(ConfigError, match="Poisson sampling.*accountant assumes"):
        cfg.validate()
