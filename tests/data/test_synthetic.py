"""LEAF Synthetic(alpha, beta): the FedProx generator's shape, determinism and heterogeneity."""

from __future__ import annotations

import numpy as np

from fedloom import RunConfig, build_simulation, load_dataset
from fedloom.data.synthetic import generate_synthetic


def test_shape_sizes_and_split() -> None:
    data = generate_synthetic(1.0, 1.0, seed=0)
    assert data.num_devices == 30
    for xtr, ytr, xte, yte in zip(data.x_train, data.y_train, data.x_test, data.y_test, strict=True):
        n = len(ytr) + len(yte)
        assert n >= 50 and len(ytr) == int(0.9 * n)
        assert xtr.shape == (len(ytr), 60) and xte.shape[1] == 60
        assert xtr.dtype == np.float32 and ytr.dtype == np.int64 and ytr.max() < 10


def test_sizes_follow_the_repository_draw() -> None:
    # n_k = int(lognormal(4, 2)) + 50 from RandomState(seed): the first draw of the generator.
    sizes = np.random.RandomState(7).lognormal(4, 2, 30).astype(int) + 50
    data = generate_synthetic(0.5, 0.5, seed=7)
    assert [len(a) + len(b) for a, b in zip(data.y_train, data.y_test, strict=True)] == sizes.tolist()


def test_seeded() -> None:
    a, b = generate_synthetic(0.5, 0.5, seed=3), generate_synthetic(0.5, 0.5, seed=3)
    c = generate_synthetic(0.5, 0.5, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.x_train, b.x_train, strict=True))
    assert not np.array_equal(a.y_train[0][:20], c.y_train[0][:20]) or len(a.y_train[0]) != len(c.y_train[0])


def test_iid_devices_share_one_model_and_feature_distribution() -> None:
    iid = generate_synthetic(0.0, 0.0, iid=True, seed=0)
    het = generate_synthetic(1.0, 1.0, seed=0)
    # IID: every device's features have mean ~0; Synthetic(1,1): device means spread with B_k, v_k.
    iid_means = np.array([x.mean() for x in iid.x_train])
    het_means = np.array([x.mean() for x in het.x_train])
    assert np.abs(iid_means).max() < 0.3 and het_means.std() > 3 * iid_means.std()


def test_registered_with_the_natural_partition() -> None:
    ds = load_dataset("synthetic_1_1")
    assert ds.num_features == 60 and ds.num_classes == 10
    assert ds.groups_train is not None and len(np.unique(ds.groups_train)) == 30
    sim = build_simulation(RunConfig(dataset="synthetic_1_1", partition="column", clients=30, model="logistic",
                                     client_test_fraction=0.1, rounds=1, progress=False))
    assert len(sim.splits) == 30
    for k, split in enumerate(sim.splits):
        assert set(ds.groups_train[split.train].tolist()) == {k}


def _repository_generate(alpha: float, beta: float, iid: bool, seed: int) -> tuple[list, list]:
    """The FedProx repository's generate_synthetic, line by line, with RandomState(seed) for np.random."""
    rs = np.random.RandomState(seed)
    dimension, num_class, num_user = 60, 10, 30
    samples_per_user = rs.lognormal(4, 2, (num_user)).astype(int) + 50
    mean_w = rs.normal(0, alpha, num_user)
    mean_b = mean_w
    big_b = rs.normal(0, beta, num_user)
    mean_x = np.zeros((num_user, dimension))
    diagonal = np.zeros(dimension)
    for j in range(dimension):
        diagonal[j] = np.power((j + 1), -1.2)
    cov_x = np.diag(diagonal)
    for i in range(num_user):
        mean_x[i] = np.ones(dimension) * big_b[i] if iid else rs.normal(big_b[i], 1, dimension)
    if iid:
        w_global = rs.normal(0, 1, (dimension, num_class))
        b_global = rs.normal(0, 1, num_class)
    xs, ys = [], []
    for i in range(num_user):
        w = rs.normal(mean_w[i], 1, (dimension, num_class))
        b = rs.normal(mean_b[i], 1, num_class)
        if iid:
            w, b = w_global, b_global
        xx = rs.multivariate_normal(mean_x[i], cov_x, samples_per_user[i])
        yy = np.zeros(samples_per_user[i])
        for j in range(samples_per_user[i]):
            tmp = np.dot(xx[j], w) + b
            yy[j] = np.argmax(np.exp(tmp) / np.sum(np.exp(tmp)))
        xs.append(xx)
        ys.append(yy)
    return xs, ys


def test_identical_to_the_repository_algorithm() -> None:
    for alpha, beta, iid in ((0.5, 0.5, False), (0.0, 0.0, True)):
        xs, ys = _repository_generate(alpha, beta, iid, seed=11)
        data = generate_synthetic(alpha, beta, iid=iid, seed=11)
        for k in range(30):
            ours_x = np.concatenate([data.x_train[k], data.x_test[k]])
            ours_y = np.concatenate([data.y_train[k], data.y_test[k]])
            order = np.lexsort(ours_x.T[::-1])
            ref_order = np.lexsort(xs[k].astype(np.float32).T[::-1])
            np.testing.assert_array_equal(ours_x[order], xs[k].astype(np.float32)[ref_order])
            np.testing.assert_array_equal(ours_y[order], ys[k].astype(np.int64)[ref_order])
