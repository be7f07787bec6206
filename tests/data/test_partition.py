import numpy as np
import pytest

from fedloom.data import PARTITIONERS, label_histogram, partition
from fedloom.errors import ConfigError

LABELS = np.repeat(np.arange(10), 60)  # 600 examples, 10 balanced classes
GROUPS = np.repeat(np.arange(6), 100)


def parts_for(method, seed=0, **kw):
    return partition(LABELS, 6 if method == "column" else 12, method=method, seed=seed, groups=GROUPS, **kw)


@pytest.mark.parametrize("method", PARTITIONERS)
def test_disjoint_and_covering(method):
    parts = parts_for(method)
    joined = np.concatenate(parts)
    assert len(joined) == len(LABELS) == len(np.unique(joined))
    assert all(len(p) > 0 for p in parts)


@pytest.mark.parametrize("method", PARTITIONERS)
def test_seed_deterministic(method):
    a, b = parts_for(method, seed=3), parts_for(method, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    if method not in ("column",):
        c = parts_for(method, seed=4)
        assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def _mean_label_entropy(parts):
    hist = label_histogram(LABELS, parts, 10).astype(float)
    p = hist / hist.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    return ent.mean()


def test_dirichlet_skew_grows_as_alpha_shrinks():
    entropies = [np.mean([_mean_label_entropy(parts_for("dirichlet", seed=s, alpha=a)) for s in range(3)])
                 for a in (100.0, 1.0, 0.1)]
    assert entropies[0] > entropies[1] > entropies[2]
    assert entropies[0] > 0.95 * np.log(10)  # near-uniform labels at large alpha


def test_shards_give_few_labels_per_client():
    parts = partition(LABELS, 30, method="shards", shards_per_client=2, seed=0)
    labels_per_client = (label_histogram(LABELS, parts, 10) > 0).sum(axis=1)
    assert labels_per_client.max() <= 2 * 2  # each shard spans at most 2 labels
    assert all(len(p) == 20 for p in parts)


def test_iid_sizes_equal_and_quantity_sizes_skewed():
    iid = [len(p) for p in parts_for("iid")]
    assert max(iid) - min(iid) <= 1
    quantity = [len(p) for p in parts_for("quantity", alpha=0.3)]
    assert max(quantity) > 3 * min(quantity) and min(quantity) >= 1


def test_column_one_client_per_group():
    parts = parts_for("column")
    assert [set(GROUPS[p]) for p in parts] == [{g} for g in range(6)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_clients": 0}, ">= 1"),
        ({"num_clients": 601}, "601 clients"),
        ({"method": "zipf"}, "unknown partition"),
        ({"method": "dirichlet", "alpha": 0.0}, "alpha must be > 0"),
        ({"method": "column"}, "group column"),
    ],
)
def test_clear_errors(kwargs, message):
    args = {"num_clients": 5, "method": "iid", **kwargs}
    with pytest.raises(ConfigError, match=message):
        partition(LABELS, args.pop("num_clients"), **args)


def test_histogram_shape_and_totals():
    parts = parts_for("dirichlet")
    hist = label_histogram(LABELS, parts, 10)
    assert hist.shape == (12, 10) and hist.sum() == 600 and (hist.sum(axis=0) == 60).all()
