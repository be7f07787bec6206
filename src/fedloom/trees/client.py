"""The tree client: one client for all three tree strategies, told by each task what to do.

A task's ``config["xgb_mode"]`` says which: ``"boost"`` (xgb-bagging, xgb-cyclic: add
``xgb_local_rounds`` trees to the global booster with ``xgboost.train`` and send only those trees),
``"sketch"`` (xgb-histogram's first round: per-feature counts on a fixed grid) or ``"hist"``
(xgb-histogram: gradient/hessian sums per open node, feature and bin). Nothing else leaves the client:
no rows, no labels, no per-row gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitRes
from fedloom.errors import ValidationError
from fedloom.trees import booster as bst
from fedloom.trees import histogram as hg

__all__ = ["TreeSpec", "TreeClient", "tree_scores"]


@dataclass(frozen=True)
class TreeSpec:
    """The model spec every party shares: task, features, classes and XGBoost hyperparameters."""

    task: str
    num_features: int
    num_classes: int
    params: hg.TreeParams
    local_rounds: int = 1

    @property
    def objective(self) -> str:
        if self.task != "classification":
            return "reg:squarederror"
        return "binary:logistic" if self.num_classes == 2 else "multi:softprob"

    def xgb_params(self, seed: int = 0) -> dict[str, Any]:
        p = self.params
        return bst.xgb_params(objective=self.objective, num_classes=self.num_classes, eta=p.eta,
                              max_depth=p.max_depth, reg_lambda=p.reg_lambda, gamma=p.gamma,
                              min_child_weight=p.min_child_weight, seed=seed)


class TreeClient(Client):
    """Serves xgb-bagging, xgb-cyclic and xgb-histogram tasks on this client's ``(x, y)``."""

    def __init__(self, spec: TreeSpec, x: np.ndarray, y: np.ndarray,
                 test: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.spec = spec
        self.x, self.y = np.asarray(x, dtype=np.float64), np.asarray(y)
        self.test_data = test

    def get_parameters(self, config: Config) -> Parameters:
        return Parameters({bst.BOOSTER: bst.empty_booster()})

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        mode = config.get("xgb_mode")
        n = len(self.y)
        if mode == "sketch":
            return FitRes(Parameters({"sketch": hg.sketch_counts(self.x)}), n)
        if mode == "hist":
            _check_hist_model(parameters, self.spec)
            return FitRes(Parameters({"hist": hg.node_histograms(self.x, self.y, parameters, self.spec.params)}), n)
        if mode == "boost":
            return FitRes(Parameters({bst.BOOSTER: self._boost(parameters, int(config.get("seed", 0)))}), n)
        raise ValidationError(f"tree task with unknown xgb_mode {mode!r}: the server runs another strategy than "
                              "xgb-bagging, xgb-cyclic or xgb-histogram")

    def _boost(self, parameters: Parameters, seed: int) -> np.ndarray:
        xgb = bst.xgboost_module()
        if bst.BOOSTER not in parameters:
            raise ValidationError(f"boost task without a {bst.BOOSTER!r} array")
        start = bst.load_booster(parameters[bst.BOOSTER], num_features=self.spec.num_features,
                                 objective=self.spec.objective)
        dtrain = xgb.DMatrix(self.x, label=self.y)
        before = start.num_boosted_rounds() if start is not None else 0
        booster = xgb.train(self.spec.xgb_params(seed % 2**31), dtrain, num_boost_round=self.spec.local_rounds,
                            xgb_model=start)
        new = booster[before:booster.num_boosted_rounds()]  # only this round's trees travel
        return bst.booster_bytes(new)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        if self.test_data is None or len(self.test_data[1]) == 0:
            return EvaluateRes(0.0, 0, {})
        x, y = self.test_data
        loss, metrics = tree_scores(self.spec, parameters, np.asarray(x, dtype=np.float64), np.asarray(y))
        return EvaluateRes(loss, len(y), dict(metrics))


def _check_hist_model(parameters: Parameters, spec: TreeSpec) -> None:
    need = ("bin_edges", "status", "feature", "split_bin", "threshold", "value", "cursor")
    missing = [k for k in need if k not in parameters]
    if missing:
        raise ValidationError(f"histogram task without model arrays {missing}")
    if parameters["bin_edges"].shape != (spec.num_features, spec.params.bins - 1):
        raise ValidationError(f"bin_edges of shape {parameters['bin_edges'].shape} do not fit {spec.num_features} "
                              f"features and {spec.params.bins} bins")
    status = parameters["status"]
    if status.ndim != 2 or status.shape[1] != spec.params.nodes:
        raise ValidationError(f"tree arrays of shape {status.shape} do not fit max_depth {spec.params.max_depth}")


def predict(spec: TreeSpec, parameters: Parameters, x: np.ndarray) -> np.ndarray:
    """Probabilities (classification: ``[n, classes]``) or values of the global model on ``x``."""
    if bst.BOOSTER in parameters:
        booster = bst.load_booster(parameters[bst.BOOSTER], num_features=spec.num_features, objective=spec.objective)
        if booster is None:
            margin = np.zeros(len(x)) if spec.num_classes <= 2 else np.zeros((len(x), spec.num_classes))
            return _link(spec, margin)
        xgb = bst.xgboost_module()
        out = np.asarray(booster.predict(xgb.DMatrix(x)), dtype=np.float64)
        if spec.objective == "binary:logistic":
            return np.stack([1 - out, out], axis=1)
        if out.ndim == 2:  # multi:softprob, float32: renormalize in float64
            return out / out.sum(axis=1, keepdims=True)
        return out
    return _link(spec, hg.predict_margin(x, parameters))


def _link(spec: TreeSpec, margin: np.ndarray) -> np.ndarray:
    if spec.objective == "reg:squarederror":
        return margin
    if margin.ndim == 1:
        p = 1.0 / (1.0 + np.exp(-margin))
        return np.stack([1 - p, p], axis=1)
    e = np.exp(margin - margin.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tree_scores(spec: TreeSpec, parameters: Parameters, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, float]]:
    """``(loss, metrics)`` of the global model on ``(x, y)``: log loss, accuracy, AUC (binary), or MSE."""
    from fedloom.sklearn.models import evaluate_predictions

    return evaluate_predictions(predict(spec, parameters, x), y, classification=spec.task == "classification",
                                classes=np.arange(max(spec.num_classes, 1)))
