"""Federated gradient-boosted trees with XGBoost (``--model xgboost``).

Strategies ``xgb-bagging`` and ``xgb-cyclic`` move boosters as validated JSON bytes
(:mod:`fedloom.trees.booster`); ``xgb-histogram`` grows trees from summed gradient histograms
(:mod:`fedloom.trees.histogram`), equal to XGBoost ``hist`` on the pooled data with the same bins.
The ``xgboost-cpu`` wheel is built without XGBoost's federated plugin (``USE_FEDERATED: False``), so
the histogram aggregation runs on fedloom's own transport. See docs/tabular.md. Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.trees.client import TreeClient, TreeSpec
    from fedloom.trees.histogram import TreeParams

__all__ = ["TreeClient", "TreeParams", "TreeSpec"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "TreeClient": "fedloom.trees.client",
    "TreeSpec": "fedloom.trees.client",
    "TreeParams": "fedloom.trees.histogram",
})
