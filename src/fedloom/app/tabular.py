"""Config -> components for the models that are not PyTorch: scikit-learn estimators and XGBoost trees.

:mod:`fedloom.app.build` asks :func:`model_family` which kind of model ``--model`` names and takes
the client factory, the first global parameters, the central evaluation and (for trees) the strategy
from here. Nothing here imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fedloom.core.client import Client, ClientFn
from fedloom.core.parameters import Parameters
from fedloom.core.types import ClientId
from fedloom.errors import ConfigError
from fedloom.sklearn.models import estimator_name, is_sklearn_model

RunConfig = Any
"""A :class:`fedloom.app.config.RunConfig` (not imported: the config's rules import this module)."""
Simulation = Any
"""A :class:`fedloom.app.build.Simulation` (not imported: build imports this module)."""

if TYPE_CHECKING:
    from fedloom.data import Dataset
    from fedloom.sklearn.models import ModelSpec
    from fedloom.trees.client import TreeSpec

__all__ = ["Family", "model_family", "client_factory", "initial_parameters", "evaluate_fn", "tree_strategy",
           "sklearn_spec", "tree_spec", "TREE_STRATEGIES"]

Family = Literal["torch", "sklearn", "xgboost"]

TREE_STRATEGIES = ("xgb-bagging", "xgb-cyclic", "xgb-histogram")
"""The strategies of ``--model xgboost`` (and only of it)."""


def model_family(cfg: RunConfig) -> Family:
    """``"sklearn"`` for ``--model sklearn:...``, ``"xgboost"`` for ``--model xgboost``, else ``"torch"``."""
    model = cfg.training.model
    if is_sklearn_model(model):
        return "sklearn"
    if model == "xgboost":
        return "xgboost"
    return "torch"


def sklearn_spec(cfg: RunConfig, ds: Dataset) -> ModelSpec:
    """The estimator spec every party shares: the global classes come from the dataset's label space
    (``labels`` in a deployment), never from one client's rows."""
    from fedloom.sklearn.models import ModelSpec

    return ModelSpec(estimator_name(cfg.training.model), ds.task, ds.num_features,
                     ds.num_classes if ds.task == "classification" else 1, hidden=cfg.training.hidden,
                     seed=cfg.run.seed, lr=cfg.training.lr, max_iter=cfg.sklearn.sklearn_max_iter)


def tree_spec(cfg: RunConfig, ds: Dataset) -> TreeSpec:
    """The tree model spec: task, features, classes and the ``[trees]`` hyperparameters."""
    from fedloom.trees import TreeParams, TreeSpec

    t = cfg.trees
    spec = TreeSpec(ds.task, ds.num_features, ds.num_classes if ds.task == "classification" else 1,
                    TreeParams(eta=t.xgb_eta, max_depth=t.xgb_max_depth, reg_lambda=t.xgb_lambda, gamma=t.xgb_gamma,
                               min_child_weight=t.xgb_min_child_weight, bins=t.xgb_bins),
                    local_rounds=t.xgb_local_rounds)
    if cfg.algorithm.strategy == "xgb-histogram" and spec.objective == "multi:softprob":
        raise ConfigError(f"xgb-histogram grows binary (logistic) and regression trees; {ds.name} has "
                          f"{ds.num_classes} classes: use xgb-bagging or xgb-cyclic for multi-class data")
    import dataclasses

    return dataclasses.replace(spec, params=dataclasses.replace(spec.params, objective=spec.objective))


def client_factory(cfg: RunConfig, sim: Simulation) -> ClientFn:
    """``cid -> client`` on that client's split: a :class:`~fedloom.sklearn.SklearnClient` or a
    :class:`~fedloom.trees.TreeClient`."""
    ds, splits = sim.dataset, sim.splits
    x_pool, y_pool = ds.x_train.astype(np.float64), ds.y_train
    family = model_family(cfg)
    if family == "sklearn":
        from fedloom.sklearn import SklearnClient

        spec: Any = sklearn_spec(cfg, ds)

        def make(x: np.ndarray, y: np.ndarray, test: Any) -> Client:
            return SklearnClient(spec, x, y, test, local_epochs=cfg.training.local_epochs)
    else:
        from fedloom.trees import TreeClient

        spec = tree_spec(cfg, ds)

        def make(x: np.ndarray, y: np.ndarray, test: Any) -> Client:
            return TreeClient(spec, x, y, test)

    def client_fn(cid: ClientId) -> Client:
        split = splits[int(cid)]
        test = (x_pool[split.test], y_pool[split.test]) if len(split.test) else None
        return make(x_pool[split.train], y_pool[split.train], test)

    return client_fn


def initial_parameters(cfg: RunConfig, sim: Simulation) -> Parameters:
    """The first global model: the estimator's primed arrays (zeros for linear models), or an empty ensemble."""
    if model_family(cfg) == "sklearn":
        from fedloom.sklearn.models import SklearnModel

        return Parameters(SklearnModel(sklearn_spec(cfg, sim.dataset)).get_arrays())
    from fedloom.trees.strategies import initial_parameters as tree_initial

    return tree_initial(cfg.algorithm.strategy, tree_spec(cfg, sim.dataset))


def evaluate_fn(cfg: RunConfig, sim: Simulation) -> Any:
    """Central evaluation on the server's held-out split: loss, accuracy and (two classes) AUC."""
    ds = sim.dataset
    x_test, y_test = ds.x_test.astype(np.float64), ds.y_test
    if model_family(cfg) == "sklearn":
        from fedloom.sklearn.models import SklearnModel

        model = SklearnModel(sklearn_spec(cfg, ds))

        def evaluate_sklearn(parameters: Parameters) -> tuple[float, dict[str, float]]:
            model.set_arrays(parameters)
            return model.scores(x_test, y_test)

        return evaluate_sklearn
    from fedloom.trees.client import tree_scores

    spec = tree_spec(cfg, ds)

    def evaluate_trees(parameters: Parameters) -> tuple[float, dict[str, float]]:
        return tree_scores(spec, parameters, x_test, y_test)

    return evaluate_trees


def tree_strategy(cfg: RunConfig, sim: Simulation, common: dict[str, Any]) -> Any:
    """The configured tree strategy over the run's tree spec."""
    from fedloom.strategies import STRATEGIES

    return STRATEGIES.get(cfg.algorithm.strategy)(cfg.algorithm, {**common, "tree_spec": tree_spec(cfg, sim.dataset)})
