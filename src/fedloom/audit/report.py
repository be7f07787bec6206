"""Pictures of an audit: originals beside reconstructions, ROC curves, empirical vs accounted epsilon.

matplotlib is imported inside each function (the Agg backend, no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fedloom.audit.membership import Roc

__all__ = ["plot_epsilons", "plot_reconstructions", "plot_roc"]


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:  # type: ignore[no-untyped-def]
    """Write ``fig`` to ``path`` (PNG, 100 dpi) and free it."""
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reconstructions(originals: np.ndarray, rows: Mapping[str, np.ndarray], path: str | Path,
                         image_shape: tuple[int, ...] | None, titles: Mapping[str, str] | None = None) -> Path:
    """A grid: the originals in the first row, one row of reconstructions per protection/attack.

    Args:
        originals: ``(n, features)`` the attacked examples.
        rows: Label -> ``(n, features)`` reconstructions (matched to the originals).
        path: The PNG to write.
        image_shape: ``(C, H, W)`` of the rows; tabular rows are drawn as a 1-row strip.
        titles: Label -> a caption (e.g. the PSNR) drawn beside the row.
    """
    plt = _plt()
    n = len(originals)
    labels = ["original", *rows]
    fig, axes = plt.subplots(len(labels), n, figsize=(1.3 * n + 1.8, 1.3 * len(labels)), squeeze=False)
    for r, label in enumerate(labels):
        data = originals if label == "original" else rows[label]
        for c in range(n):
            ax = axes[r][c]
            row = np.asarray(data[c], np.float64)
            img = row.reshape(image_shape[-2:]) if image_shape else row[None, :]
            lo, hi = float(originals[c].min()), float(originals[c].max())
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, aspect="auto" if image_shape is None else "equal")
            ax.set_xticks([])
            ax.set_yticks([])
        caption = label if not titles or label not in titles else f"{label}\n{titles[label]}"
        axes[r][0].set_ylabel(caption, rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.22, right=0.98, top=0.98, bottom=0.02, wspace=0.05, hspace=0.08)
    return _save(plt, fig, path)


def plot_roc(curves: Mapping[str, Roc], path: str | Path, title: str = "membership inference") -> Path:
    """ROC curves on log-log axes (Carlini et al.: the low-FPR corner is what matters), AUC in the legend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for label, curve in curves.items():
        fpr = np.maximum(curve.fpr, 1e-4)
        tpr = np.maximum(curve.tpr, 1e-4)
        ax.plot(fpr, tpr, label=f"{label} (AUC {curve.auc:.3f})")
    ax.plot([1e-4, 1], [1e-4, 1], "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(1e-3, 1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_epsilons(accounted: Sequence[float], lower: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """The empirical lower bound(s) against the accountant's epsilon, with the line where they are equal."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    top = max([*accounted, *(v for vs in lower.values() for v in vs), 1.0])
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="lower bound = accounted (above: a bug)")
    for label, values in lower.items():
        ax.plot(accounted, values, marker="o", label=label)
    ax.set_xlabel("accounted epsilon (upper bound)")
    ax.set_ylabel("empirical epsilon lower bound (95%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(plt, fig, path)
