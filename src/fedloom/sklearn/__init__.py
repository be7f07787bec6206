"""scikit-learn models in federations: linear models and MLPs federated by their fitted arrays.

``--model sklearn:logistic`` (or ``sgd``, ``sgd-regressor``, ``ridge``, ``mlp``, or your own estimator
as ``sklearn:package.module:factory``) trains a scikit-learn estimator on every client; the server
averages its ``coef_``/``intercept_`` (an MLP's ``coefs_``/``intercepts_``) with any FedAvg-family
strategy. The global label set is part of the model spec, so every client's estimator has the
full-width arrays even when its data holds only some of the classes (docs/tabular.md). Names load
on first use (importing the package, e.g. for its options, loads nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.sklearn.client import SklearnClient
    from fedloom.sklearn.models import ESTIMATORS, ModelSpec, SklearnModel, is_sklearn_model

__all__ = ["ESTIMATORS", "ModelSpec", "SklearnClient", "SklearnModel", "is_sklearn_model"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "SklearnClient": "fedloom.sklearn.client",
    "ESTIMATORS": "fedloom.sklearn.models",
    "ModelSpec": "fedloom.sklearn.models",
    "SklearnModel": "fedloom.sklearn.models",
    "is_sklearn_model": "fedloom.sklearn.models",
})
