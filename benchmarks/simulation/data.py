"""Synthetic data for the 10,000-client workload (digits has only 1,797 rows).

Gaussian class clusters in 64 dimensions, 10 classes: the same shape as digits, large enough that
10,000 clients each hold a few examples. Written as ``.npz`` (arrays ``x`` and ``y``), which both
fedloom (``--dataset path.npz``) and the plain program read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_synthetic(
    path: str | Path, *, rows: int = 50_000, features: int = 64, classes: int = 10, seed: int = 0
) -> Path:
    """Write the synthetic dataset to ``path`` (once; an existing file is kept) and return the path."""
    path = Path(path)
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=1.0, size=(classes, features))
    y = rng.integers(0, classes, size=rows)
    x = centers[y] + rng.normal(scale=2.0, size=(rows, features))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))
    return path
