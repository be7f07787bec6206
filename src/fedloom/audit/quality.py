"""How close a reconstruction is: PSNR and SSIM for images, MSE for tabular rows, label recovery.

Reconstructions are compared on the data's own (standardized) scale, each image first mapped to
``[0, 1]`` with the range of its original, so that PSNR/SSIM do not depend on the standardization.
A batch is matched to the originals by the best assignment (the attacker does not know the order).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["best_match", "label_recovery", "mse", "psnr", "ssim"]


def _unit(original: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = float(original.min()), float(original.max())
    span = hi - lo if hi > lo else 1.0
    return (original - lo) / span, np.clip((other - lo) / span, 0.0, 1.0)


def mse(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean squared error on the data's own scale."""
    return float(np.mean((np.asarray(original, float) - np.asarray(reconstruction, float)) ** 2))


def psnr(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, both mapped to ``[0, 1]`` by the original's range (capped at 100)."""
    a, b = _unit(np.asarray(original, float), np.asarray(reconstruction, float))
    err = float(np.mean((a - b) ** 2))
    return 100.0 if err <= 1e-10 else min(100.0, 10.0 * math.log10(1.0 / err))


def ssim(original: np.ndarray, reconstruction: np.ndarray, shape: tuple[int, int] | None = None) -> float:
    """Structural similarity (Wang et al. 2004) with a 3x3 uniform window (8x8 images are small).

    Args:
        original: The true image (any shape with ``H * W`` entries, or ``shape`` given).
        reconstruction: The reconstruction, same size.
        shape: ``(H, W)`` to reshape flat rows.
    """
    a, b = _unit(np.asarray(original, float), np.asarray(reconstruction, float))
    if shape is not None:
        a, b = a.reshape(shape), b.reshape(shape)
    if a.ndim != 2:
        side = int(round(math.sqrt(a.size)))
        a, b = a.reshape(side, -1), b.reshape(side, -1)
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def box(x: np.ndarray) -> np.ndarray:
        p = np.pad(x, 1, mode="reflect")
        total = np.zeros_like(x)
        for i in range(3):
            for j in range(3):
                total += p[i:i + x.shape[0], j:j + x.shape[1]]
        return total / 9.0

    mu_a, mu_b = box(a), box(b)
    var_a, var_b = box(a * a) - mu_a ** 2, box(b * b) - mu_b ** 2
    cov = box(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def best_match(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """For each original, the index of the reconstruction assigned to it (Hungarian, by MSE)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((originals[:, None, :] - reconstructions[None, :, :]) ** 2).mean(axis=2)
    rows, cols = linear_sum_assignment(cost)
    out = np.zeros(len(originals), dtype=int)
    out[rows] = cols
    return out


def label_recovery(true_labels: np.ndarray, recovered: np.ndarray) -> float:
    """Share of the true labels recovered, as multisets (the order of a batch is unknown)."""
    true_labels, recovered = np.asarray(true_labels).ravel(), np.asarray(recovered).ravel()
    if true_labels.size == 0:
        return float("nan")
    hits = sum(min(int((true_labels == c).sum()), int((recovered == c).sum())) for c in np.unique(true_labels))
    return hits / true_labels.size
