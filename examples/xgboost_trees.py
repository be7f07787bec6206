"""Federated XGBoost on breast_cancer: tree bagging and histogram-based trees, no PyTorch.

``xgb-bagging``: every client adds trees to the global booster (its JSON bytes travel, never a
pickle). ``xgb-histogram``: clients send gradient histograms; the server sums them and grows trees
equal to XGBoost ``hist`` on the pooled data (docs/tabular.md). Needs ``pip install 'fedloom[xgboost]'``.
The same from the command line: ``fedloom run --model xgboost --strategy xgb-bagging --dataset
breast_cancer``.

Run: python examples/xgboost_trees.py
"""

from __future__ import annotations

from fedloom.app.build import run_simulation
from fedloom.app.config import RunConfig

if __name__ == "__main__":
    common = {"dataset": "breast_cancer", "model": "xgboost", "clients": 3, "partition": "iid", "seed": 1,
              "xgb_max_depth": 3, "progress": False, "fraction_evaluate": 0.0}
    bagging = run_simulation(RunConfig(strategy="xgb-bagging", rounds=5, xgb_local_rounds=2, **common))
    # one sketch round for the bin edges, then one round per tree level: 1 + 5 trees x depth 3
    histogram = run_simulation(RunConfig(strategy="xgb-histogram", rounds=1 + 5 * 3, **common))
    print(f"xgb-bagging auc: {bagging.final['auc']:.3f}")
    print(f"xgb-histogram auc: {histogram.final['auc']:.3f}")
