"""LEAF Synthetic(alpha, beta): the FedProx paper's heterogeneous logistic-regression data.

Paper: Tian Li, Anit Kumar Sahu, Manzil Zaheer, Maziar Sanjabi, Ameet Talwalkar, Virginia Smith,
"Federated Optimization in Heterogeneous Networks", MLSys 2020, arXiv:1812.06127 (Section 5.1);
also LEAF (Caldas et al., arXiv:1812.01097). Follows ``data/synthetic_*/generate_*.py`` of the
FedProx repository step by step, with the same draws in the same order, so that a given seed of
numpy's legacy ``RandomState`` gives the repository's numbers:

* 30 devices, 60 features, 10 classes; device ``k`` has ``n_k = int(lognormal(4, 2)) + 50`` rows;
* ``u_k ~ N(0, alpha)``, ``W_k ~ N(u_k, 1)`` (60x10), ``b_k ~ N(u_k, 1)`` (10);
* ``B_k ~ N(0, beta)``, feature means ``v_k ~ N(B_k, 1)`` (60), ``x ~ N(v_k, diag(j^-1.2))``;
* ``y = argmax(softmax(x W_k + b_k))``;
* IID variant: one global ``W, b ~ N(0, 1)`` and ``v_k = B_k`` for every device (with ``beta = 0``
  the repository's call: all means zero);
* each device's rows are shuffled and split 90/10 into train and test.

Example:
    >>> data = generate_synthetic(1.0, 1.0, seed=0)
    >>> len(data.x_train), data.x_train[0].shape[1], data.num_classes
    (30, 60, 10)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticData", "generate_synthetic", "SYNTHETIC_DATASETS", "synthetic_loader", "synthetic_groups"]

NUM_DEVICES = 30
NUM_FEATURES = 60
NUM_CLASSES = 10

SYNTHETIC_DATASETS: dict[str, tuple[float, float, bool]] = {
    "synthetic_iid": (0.0, 0.0, True),
    "synthetic_0_0": (0.0, 0.0, False),
    "synthetic_0.5_0.5": (0.5, 0.5, False),
    "synthetic_1_1": (1.0, 1.0, False),
}
"""Dataset names (``--dataset``) -> ``(alpha, beta, iid)`` of the FedProx paper's four sets."""


@dataclass
class SyntheticData:
    """Per-device train and test arrays (``x`` float32 ``(n, 60)``, ``y`` int64)."""

    x_train: list[np.ndarray]
    y_train: list[np.ndarray]
    x_test: list[np.ndarray]
    y_test: list[np.ndarray]
    num_classes: int = NUM_CLASSES

    @property
    def num_devices(self) -> int:
        return len(self.x_train)


def generate_synthetic(
    alpha: float,
    beta: float,
    *,
    iid: bool = False,
    seed: int = 0,
    num_devices: int = NUM_DEVICES,
    train_fraction: float = 0.9,
) -> SyntheticData:
    """Generate Synthetic(alpha, beta) (or the IID variant) with ``RandomState(seed)``.

    Args:
        alpha: Standard deviation of the per-device model means ``u_k`` (model heterogeneity).
        beta: Standard deviation of the per-device feature-mean centres ``B_k`` (data heterogeneity).
        iid: The IID variant (one global model, feature means ``B_k``).
        seed: Seed; the same seed gives the same data.
        num_devices: Number of devices (30 in the paper).
        train_fraction: Fraction of each device's rows used for training (the rest: its test set).
    """
    rs = np.random.RandomState(seed)
    sizes = rs.lognormal(4, 2, num_devices).astype(int) + 50
    mean_w = rs.normal(0, alpha, num_devices)
    mean_b = mean_w
    centres = rs.normal(0, beta, num_devices)
    mean_x = np.zeros((num_devices, NUM_FEATURES))
    cov_x = np.diag(np.power(np.arange(1, NUM_FEATURES + 1, dtype=np.float64), -1.2))
    _, s, v = np.linalg.svd(cov_x)
    transform = np.sqrt(s)[:, None] * v
    for k in range(num_devices):
        mean_x[k] = np.ones(NUM_FEATURES) * centres[k] if iid else rs.normal(centres[k], 1, NUM_FEATURES)
    if iid:
        w_global = rs.normal(0, 1, (NUM_FEATURES, NUM_CLASSES))
        b_global = rs.normal(0, 1, NUM_CLASSES)
    xs, ys = [], []
    for k in range(num_devices):
        w = rs.normal(mean_w[k], 1, (NUM_FEATURES, NUM_CLASSES))
        b = rs.normal(mean_b[k], 1, NUM_CLASSES)
        if iid:
            w, b = w_global, b_global
        # = rs.multivariate_normal(mean_x[k], cov_x, n_k), same draws and arithmetic, with the
        # SVD of the shared covariance computed once instead of per device.
        x = rs.standard_normal((sizes[k], NUM_FEATURES)) @ transform + mean_x[k]
        xs.append(x)
        ys.append(np.argmax(x @ w + b, axis=1))  # softmax is monotone: same argmax
    # The repository shuffles each device with Python's `random`; we use a separate seeded stream.
    split_rng = np.random.default_rng(seed)
    out = SyntheticData([], [], [], [])
    for x, y in zip(xs, ys, strict=True):
        order = split_rng.permutation(len(y))
        n_train = int(train_fraction * len(y))
        tr, te = order[:n_train], order[n_train:]
        out.x_train.append(x[tr].astype(np.float32))
        out.y_train.append(y[tr].astype(np.int64))
        out.x_test.append(x[te].astype(np.float32))
        out.y_test.append(y[te].astype(np.int64))
    return out


@functools.lru_cache(maxsize=8)
def _cached(name: str, seed: int) -> SyntheticData:
    alpha, beta, iid = SYNTHETIC_DATASETS[name]
    return generate_synthetic(alpha, beta, iid=iid, seed=seed)


def _rows(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All rows of a named set (train then test of each device, in device order) and device ids."""
    data = _cached(name, 0)
    xs, ys, gs = [], [], []
    for k in range(data.num_devices):
        for x, y in ((data.x_train[k], data.y_train[k]), (data.x_test[k], data.y_test[k])):
            xs.append(x)
            ys.append(y)
            gs.append(np.full(len(y), k, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def synthetic_loader(name: str) -> Callable[[], tuple[np.ndarray, np.ndarray, str, None]]:
    """A :data:`fedloom.data.DATASETS` loader for a named synthetic set (data seed 0)."""

    def load() -> tuple[np.ndarray, np.ndarray, str, None]:
        x, y, _ = _rows(name)
        return x.copy(), y.copy(), "classification", None

    return load


def synthetic_groups(name: str) -> np.ndarray | None:
    """Device id of every row a :func:`synthetic_loader` returns (``None`` for other datasets)."""
    if name not in SYNTHETIC_DATASETS:
        return None
    return _rows(name)[2].copy()
