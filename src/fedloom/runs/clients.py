"""How each client fares: the spread of per-client evaluation results (``summary.json``'s ``clients`` block).

Every federated evaluation records each evaluating client's loss, example count and metrics on its
own held-out split (:attr:`fedloom.engine.RoundRecord.clients`). :func:`clients_block` summarizes
the last evaluated round: per metric the mean, median, 10th percentile, worst client and standard
deviation over clients (each client counts once, whatever its size), and every client's values.

Example:
    >>> block = distribution([0.9, 0.5, 0.7, 0.8], higher_is_better=True)
    >>> block["worst"], block["median"]
    (0.5, 0.75)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["clients_block", "distribution", "higher_is_better"]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (losses and errors: no)."""
    return not any(word in metric for word in ("loss", "error", "mse", "mae"))


def distribution(values: Sequence[float], *, higher_is_better: bool) -> dict[str, float]:
    """``mean``, ``median``, ``p10`` (the value 10% of clients do worse than), ``worst``, ``best`` and ``std``
    (population) of per-client values; for a loss, ``p10`` is the 90th percentile and ``worst`` the maximum."""
    arr = np.asarray(values, dtype=np.float64)
    low = higher_is_better
    return {
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "p10": float(np.percentile(arr, 10 if low else 90)),
        "worst": float(arr.min() if low else arr.max()),
        "best": float(arr.max() if low else arr.min()),
        "std": float(arr.std()),
    }


def clients_block(history: Sequence[Any]) -> dict[str, Any] | None:
    """The ``clients`` block of the last round in ``history`` (:class:`~fedloom.engine.RoundRecord`) that
    evaluated clients; ``None`` when none did."""
    record = next((r for r in reversed(history) if r.clients), None)
    if record is None:
        return None
    per_client: dict[str, dict[str, float]] = {cid: dict(v) for cid, v in sorted(record.clients.items(),
                                                                                  key=lambda kv: _order(kv[0]))}
    names = sorted({k for row in per_client.values() for k in row} - {"num_examples"})
    metrics = {name: distribution([row[name] for row in per_client.values() if name in row],
                                  higher_is_better=higher_is_better(name)) for name in names}
    return {"round": record.round, "count": len(per_client), "metrics": metrics, "per_client": per_client}


def _order(cid: str) -> tuple[int, int | str]:
    return (0, int(cid)) if cid.isdigit() else (1, cid)
