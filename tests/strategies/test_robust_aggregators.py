"""Robust aggregators: hand-computed values and invariants shared by every aggregator."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.errors import ConfigError, RoundFailedError
from fedloom.strategies import (
    Bulyan,
    CoordinateMedian,
    Krum,
    MultiKrum,
    NormBound,
    TrimmedMean,
    WeightedMean,
    build_aggregator,
)

ALL = {
    "mean": lambda: WeightedMean(),
    "median": lambda: CoordinateMedian(),
    "trimmed_mean": lambda: TrimmedMean(0.2),
    "krum": lambda: Krum(f=2),
    "multikrum": lambda: MultiKrum(f=2, m=4),
    "bulyan": lambda: Bulyan(f=2),
    "normbound_mean": lambda: NormBound(1.5),
    "normbound_median": lambda: NormBound(1.5, CoordinateMedian()),
}


def _vecs(*rows: list[float]) -> list[np.ndarray]:
    return [np.array(r, dtype=np.float64) for r in rows]


# -- hand-computed values --------------------------------------------------------------------------
def test_median_by_coordinate() -> None:
    ups = _vecs([1, 10], [2, -5], [100, 0])
    assert CoordinateMedian()(ups, np.ones(3)).tolist() == [2.0, 0.0]


def test_trimmed_mean_drops_extremes_per_coordinate() -> None:
    # beta=0.2 of 5 -> one value trimmed from each end of every coordinate.
    ups = _vecs([1, 50], [2, 1], [3, 2], [4, 3], [-100, 4])
    out = TrimmedMean(0.2)(ups, np.ones(5))
    assert out.tolist() == [(1 + 2 + 3) / 3, (2 + 3 + 4) / 3]


def test_krum_picks_the_update_closest_to_its_neighbours() -> None:
    # n=5, f=1 -> each score sums the n-f-2=2 smallest squared distances.
    ups = _vecs([0.0], [1.0], [2.0], [3.5], [10.0])
    # scores: 0 -> 1+4=5; 1 -> 1+1=2; 2 -> 1+2.25=3.25; 3.5 -> 2.25+6.25=8.5; 10 -> 42.25+64=106.25
    assert Krum(f=1)(ups, np.ones(5)).tolist() == [1.0]
    # Multi-Krum m=3 averages the three best (1, 2, 0) with their weights.
    out = MultiKrum(f=1, m=3)(ups, np.array([1.0, 1.0, 2.0, 1.0, 1.0]))
    assert out.tolist() == pytest.approx([(0 * 1 + 1 * 1 + 2 * 2) / 4])


def test_bulyan_hand_computed() -> None:
    # n=7, f=1: select n-2f=5 by repeated Krum (drops the two outliers 50 and -40), then per
    # coordinate average the n-4f=3 values closest to the median of the selection.
    ups = _vecs([0.0], [1.0], [2.0], [3.0], [4.0], [50.0], [-40.0])
    assert Bulyan(f=1)(ups, np.ones(7)).tolist() == [2.0]  # median 2, closest three: 1, 2, 3


def test_norm_bound_clips_then_averages() -> None:
    ups = _vecs([3.0, 4.0], [0.3, 0.4])  # norms 5 and 0.5
    out = NormBound(1.0)(ups, np.array([1.0, 1.0]))
    assert out == pytest.approx([(0.6 + 0.3) / 2, (0.8 + 0.4) / 2])


# -- invariants for every aggregator ----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ALL))
def test_permutation_invariance(name: str) -> None:
    rng = np.random.default_rng(0)
    ups = [rng.normal(size=6) for _ in range(11)]
    weights = rng.uniform(1, 5, size=11)
    perm = rng.permutation(11)
    agg = ALL[name]()
    a = agg(ups, weights)
    b = agg([ups[i] for i in perm], weights[perm])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ALL))
def test_identical_updates_give_that_update(name: str) -> None:
    u = np.array([0.3, -0.2, 0.5, 0.1])  # norm < 1.5: norm bounding leaves it alone
    out = ALL[name]()([u.copy() for _ in range(11)], np.arange(1.0, 12.0))
    np.testing.assert_allclose(out, u, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ALL))
def test_output_is_a_vector_of_the_update_shape(name: str) -> None:
    ups = [np.random.default_rng(i).normal(size=7) for i in range(11)]
    assert ALL[name]()(ups, np.ones(11)).shape == (7,)


def test_special_cases_reduce_to_the_mean() -> None:
    rng = np.random.default_rng(1)
    ups = [rng.normal(size=5) for _ in range(6)]
    w = rng.uniform(1, 3, size=6)
    np.testing.assert_allclose(TrimmedMean(0.0)(ups, w), np.mean(ups, axis=0), atol=1e-12)
    np.testing.assert_allclose(MultiKrum(f=0, m=6)(ups, w), WeightedMean()(ups, w), atol=1e-12)
    np.testing.assert_allclose(NormBound(1e9)(ups, w), WeightedMean()(ups, w), atol=1e-12)
    np.testing.assert_allclose(CoordinateMedian()(ups[:2], w[:2]), np.mean(ups[:2], axis=0), atol=1e-12)


@pytest.mark.parametrize(
    ("agg", "n"), [(Krum(f=2), 6), (MultiKrum(f=1, m=2), 4), (Bulyan(f=1), 6), (TrimmedMean(0.2), 0)]
)
def test_too_few_updates_fail_the_round_clearly(agg: object, n: int) -> None:
    with pytest.raises(RoundFailedError, match="needs at least|trims all"):
        agg([np.zeros(2)] * n, np.ones(n))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"name": "mode"}, "unknown aggregator"), ({"name": "trimmed_mean", "trim_beta": 0.5}, "trim_beta"),
     ({"name": "krum", "byzantine_f": -1}, "byzantine_f"), ({"name": "mean", "clip_update_norm": -1.0}, "clip")],
)
def test_build_aggregator_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_aggregator(**kwargs)


def test_build_aggregator_wraps_norm_bound() -> None:
    agg = build_aggregator("median", clip_update_norm=2.0)
    assert isinstance(agg, NormBound) and isinstance(agg.inner, CoordinateMedian)
