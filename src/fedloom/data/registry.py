"""The data registries: bundled datasets and partitioners, each registered in its own module.

A dataset loader is ``() -> (x, y, task, image_shape)``; a partitioner is
``(labels, num_clients, rng, *, alpha, shards_per_client, groups, min_size) -> list of index arrays``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedloom.core.registry import Registry

__all__ = ["DATASETS", "PARTITIONERS"]

DATASETS: Registry[Callable[[], tuple[Any, Any, str, Any]]] = Registry(
    "dataset", modules=["fedloom.data.datasets"], package="fedloom.data"
)
"""Bundled datasets by name (a path to a ``.csv`` or ``.npz`` file is accepted besides)."""

PARTITIONERS: Registry[Callable[..., list[Any]]] = Registry(
    "partition", modules=["fedloom.data.partition"], package="fedloom.data", plural="partitioners"
)
"""How a dataset's rows are split over clients (``--partition``)."""
