"""xgb-histogram equals centralized XGBoost ``hist`` on the pooled data with the same bins.

The federated run goes through the whole round loop (sketch round, then one round per tree level,
clients on a non-IID partition). Centralized XGBoost trains on the union of the clients' rows,
pre-binned to the federated run's bin indices, so that its own quantization is exact (every bin index
is its own bin). Predictions on the pooled training rows must match to 1e-5 (XGBoost accumulates
gradients in float32, the federated histograms in float64).
"""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.app.build import build_simulation, run_simulation
from fedloom.app.config import RunConfig
from fedloom.trees import histogram as hg

xgb = pytest.importorskip("xgboost")

TOLERANCE = 1e-5


def _federated(dataset: str, **over: object) -> tuple[RunConfig, object]:
    settings = {"clients": 4, "partition": "dirichlet", "alpha": 0.5, **over}
    cfg = RunConfig(dataset=dataset, model="xgboost", strategy="xgb-histogram", client_test_fraction=0.0,
                    progress=False, fraction_evaluate=0.0, **settings)
    return cfg, run_simulation(cfg)


@pytest.mark.parametrize(("dataset", "objective", "over"), [
    ("breast_cancer", "binary:logistic", {"rounds": 1 + 3 * 4, "xgb_max_depth": 3, "xgb_bins": 16}),
    ("diabetes", "reg:squarederror", {"rounds": 1 + 4 * 3, "xgb_max_depth": 4, "xgb_bins": 24,
                                      "xgb_min_child_weight": 3.0, "xgb_lambda": 2.0, "xgb_eta": 0.2,
                                      "partition": "iid"}),
])
def test_federated_trees_equal_centralized_xgboost(dataset: str, objective: str, over: dict) -> None:
    cfg, result = _federated(dataset, **over)
    model = result.parameters
    trees = hg.finished_trees(model)
    assert trees >= 3, f"only {trees} trees finished"
    ds = build_simulation(cfg).dataset
    x, y = ds.x_train.astype(np.float64), ds.y_train.astype(np.float64)
    binned = hg.bin_features(x, model["bin_edges"]).astype(np.float64)
    t = cfg.trees
    params = {"objective": objective, "tree_method": "hist", "max_bin": 256, "eta": t.xgb_eta,
              "max_depth": t.xgb_max_depth, "lambda": t.xgb_lambda, "gamma": t.xgb_gamma,
              "min_child_weight": t.xgb_min_child_weight, "base_score": 0.5 if objective == "binary:logistic" else 0.0,
              "nthread": 1}
    central = xgb.train(params, xgb.DMatrix(binned, label=y), num_boost_round=trees)
    want = central.predict(xgb.DMatrix(binned), output_margin=True)
    got = hg.predict_margin(x, model)
    assert np.max(np.abs(got - want)) < TOLERANCE, np.max(np.abs(got - want))
    # and the trees are not trivial: the federated model fits the data
    assert np.std(got) > 0.1
