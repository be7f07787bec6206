"""Partitioners: split a pool of examples among clients, deterministically under a seed.

Each returns a list with one sorted index array per client. The parts are disjoint and cover
every example. Non-IID schemes follow the papers people compare against:

* ``iid``: a uniformly random equal split.
* ``dirichlet``: label skew, per class proportions ~ Dir(alpha) over clients (Hsu, Qi, Brown,
  "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
  Classification", arXiv:1909.06335). Smaller alpha, more skew.
* ``shards``: McMahan et al.'s pathological split: sort by label, cut into
  ``clients * shards_per_client`` shards, give each client ``shards_per_client`` of them.
* ``quantity``: sizes ~ Dir(alpha) over clients, labels IID (quantity skew).
* ``column``: one client per distinct value of a natural group column (e.g. a hospital id).
"""

from __future__ import annotations

import numpy as np

from fedloom.data.registry import PARTITIONERS
from fedloom.errors import ConfigError

__all__ = ["PARTITIONERS", "partition", "label_histogram"]


def partition(
    labels: np.ndarray,
    num_clients: int,
    *,
    method: str = "iid",
    alpha: float = 0.5,
    shards_per_client: int = 2,
    groups: np.ndarray | None = None,
    min_size: int = 1,
    seed: int = 0,
) -> list[np.ndarray]:
    """Split example indices ``0 .. len(labels) - 1`` among ``num_clients`` clients.

    Args:
        labels: One label per example (any values for ``iid``/``quantity``).
        num_clients: Number of parts.
        method: One of :data:`PARTITIONERS`.
        alpha: Dirichlet concentration for ``dirichlet`` and ``quantity``.
        shards_per_client: Shards per client for ``shards``.
        groups: Group id per example, for ``column``.
        min_size: Every client gets at least this many examples (``dirichlet``/``quantity``).
        seed: Seed; the same seed gives the same split.

    Example:
        >>> parts = partition(np.array([0, 0, 1, 1]), 2, method="iid", seed=0)
        >>> sorted(np.concatenate(parts).tolist())
        [0, 1, 2, 3]
    """
    labels = np.asarray(labels)
    n = len(labels)
    if num_clients < 1:
        raise ConfigError(f"number of clients must be >= 1, got {num_clients}")
    split = PARTITIONERS.get(method)  # ConfigError listing the choices for an unknown name
    if method != "column" and num_clients * max(min_size, 1) > n:
        each = "2 each: one to train, one for --client-test-fraction; with --client-test-fraction 0, 1 each" \
            if min_size == 2 else f"{max(min_size, 1)} each"
        raise ConfigError(
            f"{num_clients} clients need at least {num_clients * max(min_size, 1)} examples ({each}), "
            f"but the dataset has {n}: use fewer clients or a larger dataset"
        )
    if method in ("dirichlet", "quantity") and not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha}")
    rng = np.random.default_rng(seed)
    parts = split(labels, num_clients, rng, alpha=alpha, shards_per_client=shards_per_client, groups=groups,
                  min_size=min_size)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


@PARTITIONERS.register("iid", help="Uniformly at random, equal sizes.")
def _iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator, **_: object) -> list[np.ndarray]:
    return np.array_split(rng.permutation(len(labels)), num_clients)


@PARTITIONERS.register("dirichlet", help="Label skew: each class spread over clients by Dirichlet(alpha).")
def _dirichlet(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, *, alpha: float, min_size: int, **_: object
) -> list[np.ndarray]:
    classes = np.unique(labels)
    for _attempt in range(1000):
        buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            props = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for k, piece in enumerate(np.split(idx, cuts)):
                buckets[k].append(piece)
        parts = [np.concatenate(b) for b in buckets]
        if min(len(p) for p in parts) >= min_size:
            return parts
    raise ConfigError(
        f"could not give each of {num_clients} clients >= {min_size} examples with alpha={alpha}; "
        "use fewer clients or a larger alpha"
    )


@PARTITIONERS.register("shards", help="McMahan et al.'s pathological non-IID: sorted shards per client.")
def _shards(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, *, shards_per_client: int, **_: object
) -> list[np.ndarray]:
    per_client = shards_per_client
    if per_client < 1:
        raise ConfigError(f"shards_per_client must be >= 1, got {per_client}")
    num_shards = num_clients * per_client
    if num_shards > len(labels):
        raise ConfigError(f"{num_shards} shards need at least {num_shards} examples, have {len(labels)}")
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, num_shards)
    assignment = rng.permutation(num_shards).reshape(num_clients, per_client)
    return [np.concatenate([shards[s] for s in row]) for row in assignment]


@PARTITIONERS.register("quantity", help="Size skew: client sizes by Dirichlet(alpha), labels uniform.")
def _quantity(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, *, alpha: float, min_size: int, **_: object
) -> list[np.ndarray]:
    n = len(labels)
    # Reserve min_size for everyone, spread the rest by Dir(alpha) proportions.
    spare = n - num_clients * min_size
    props = rng.dirichlet(np.full(num_clients, alpha))
    extra = np.floor(props * spare).astype(int)
    extra[: spare - extra.sum()] += 1  # hand out the rounding remainder
    sizes = extra + min_size
    return np.split(rng.permutation(n), np.cumsum(sizes)[:-1])


@PARTITIONERS.register("column", help="Natural groups: one client per value of the group column.")
def _column(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, *, groups: np.ndarray | None, **_: object
) -> list[np.ndarray]:
    if groups is None:
        raise ConfigError("partition 'column' needs a dataset with a group column (group_column=...)")
    values = np.unique(groups)
    if len(values) != num_clients:
        raise ConfigError(
            f"partition 'column' makes one client per group: the clients' rows hold {len(values)} groups, "
            f"but {num_clients} clients were requested; set clients = {len(values)} (or leave --clients out)"
        )
    return [np.flatnonzero(groups == v) for v in values]


def label_histogram(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Counts per client and class: shape ``(len(parts), num_classes)``."""
    labels = np.asarray(labels)
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in parts])
