"""Federated gradient-boosted trees with XGBoost (``--model xgboost``).

Strategies ``xgb-bagging`` and ``xgb-cyclic`` move boosters as validated JSON bytes
(:mod:`fedloom.trees.booster`); ``xgb-histogram`` grows trees from summed gradient histograms
(:mod:`fedloom.trees.histogram`), equal to XGBoost ``hist`` on the pooled data with the same bins.
The ``xgboost-cpu`` wheel is built without XGBoost's federated plugin (``USE_FEDERATED: False``), so
the histogram aggregation runs on fedloom's own transport. See docs/tabular.md.
"""

from fedloom.trees.client import TreeClient, TreeSpec
from fedloom.trees.histogram import TreeParams

__all__ = ["TreeClient", "TreeParams", "TreeSpec"]
