"""scikit-learn estimators by name, and the federated view of one: its arrays, training, evaluation.

A :class:`ModelSpec` fixes what every party must agree on: the task, the number of features and the
global class list. :class:`SklearnModel` builds the estimator and *primes* it on a tiny synthetic
batch that holds every class, with sample weight 0 where the estimator accepts weights, so that
``classes_``, ``coef_`` (or an MLP's ``coefs_``) exist with their global shapes before any local
data is seen; the arrays are then overwritten by the global model.

Estimators with ``partial_fit`` (SGD, MLP) train incrementally with ``classes=`` the global set;
the others (``LogisticRegression`` warm-started, ``Ridge``) refit on local data plus one
zero-weight row of every class missing locally, so their arrays keep the global width and the
local objective is unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedloom.core.registry import Registry, call_with_accepted, is_import_path, load_object
from fedloom.errors import ConfigError

__all__ = ["ESTIMATORS", "ModelSpec", "SklearnModel", "PREFIX", "is_sklearn_model", "estimator_name"]

PREFIX = "sklearn:"
"""``--model sklearn:NAME`` selects a scikit-learn estimator (NAME: a built-in or ``package.module:factory``)."""

ESTIMATORS: Registry[Callable[..., Any]] = Registry("sklearn model", modules=["fedloom.sklearn.models"],
                                                   plural="sklearn_models")
"""Built-in estimators (``--model sklearn:NAME``): factories ``(*, seed, hidden, lr, max_iter) -> estimator``."""


def is_sklearn_model(model: str) -> bool:
    """Whether ``--model`` names a scikit-learn estimator (``sklearn:...``)."""
    return model.startswith(PREFIX)


def estimator_name(model: str) -> str:
    """``"logistic"`` of ``"sklearn:logistic"`` (``"pkg.mod:factory"`` of ``"sklearn:pkg.mod:factory"``)."""
    return model[len(PREFIX):]


@ESTIMATORS.register("logistic")
def logistic(*, max_iter: int = 10, seed: int = 0, **_: object) -> Any:
    """LogisticRegression (lbfgs), warm-started from the global model, ``sklearn_max_iter`` iterations a round."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=max_iter, warm_start=True, random_state=seed)


@ESTIMATORS.register("sgd")
def sgd(*, seed: int = 0, **_: object) -> Any:
    """SGDClassifier with the log loss (logistic regression by SGD), one pass per local epoch."""
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="log_loss", random_state=seed)


@ESTIMATORS.register("sgd-regressor")
def sgd_regressor(*, seed: int = 0, **_: object) -> Any:
    """SGDRegressor (squared error), one pass per local epoch."""
    from sklearn.linear_model import SGDRegressor

    return SGDRegressor(random_state=seed)


@ESTIMATORS.register("ridge")
def ridge(**_: object) -> Any:
    """Ridge regression: each client's closed-form solution, averaged (one-shot averaging)."""
    from sklearn.linear_model import Ridge

    return Ridge()


@ESTIMATORS.register("mlp")
def mlp(*, hidden: int = 32, seed: int = 0, lr: float = 0.001, **_: object) -> Any:
    """MLPClassifier (one hidden layer of ``--hidden`` units, Adam), one pass per local epoch."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(hidden,), random_state=seed, learning_rate_init=min(lr, 0.01))


@dataclass(frozen=True)
class ModelSpec:
    """What all parties agree on: the estimator, the task, the feature count and the global classes.

    Attributes:
        name: A built-in :data:`ESTIMATORS` name or ``package.module:factory`` (your estimator).
        task: ``"classification"`` or ``"regression"``.
        num_features: Feature columns.
        num_classes: The global class count (classes are ``0 .. num_classes-1``; 1 for regression).
        hidden, seed, lr, max_iter: Offered to the factory (it takes those it accepts).
    """

    name: str
    task: str
    num_features: int
    num_classes: int = 1
    hidden: int = 32
    seed: int = 0
    lr: float = 0.01
    max_iter: int = 10

    @property
    def classes(self) -> np.ndarray:
        return np.arange(self.num_classes)


def _factory(name: str) -> Callable[..., Any]:
    if name in ESTIMATORS and not is_import_path(name):
        return ESTIMATORS.get(name)
    if is_import_path(name):
        return load_object(name, "sklearn estimator factory")  # type: ignore[no-any-return]
    raise ConfigError(f"unknown sklearn model {name!r}; choose one of: "
                      f"{', '.join(PREFIX + n for n in ESTIMATORS.names())}, or sklearn:package.module:factory")


class SklearnModel:
    """One estimator of a :class:`ModelSpec`, with its federated arrays.

    Raises:
        ConfigError: the factory's estimator has neither ``coef_`` nor ``coefs_`` after priming
            (fedloom federates linear models and MLPs), or does not fit.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        est = call_with_accepted(_factory(spec.name), hidden=spec.hidden, seed=spec.seed, lr=spec.lr,
                                 max_iter=spec.max_iter)
        if not hasattr(est, "fit") or not hasattr(est, "predict"):
            raise ConfigError(f"sklearn model {spec.name!r} returned {type(est).__name__}, not an estimator "
                              "(it needs fit and predict)")
        self.estimator = est
        self.classifier = spec.task == "classification"
        self._prime()

    # -- layout -------------------------------------------------------------------------------------
    def _prime(self) -> None:
        """Fit once on a synthetic batch of every class, so every array exists with its global shape."""
        k = max(self.spec.num_classes, 2)
        x = np.zeros((k, self.spec.num_features), dtype=np.float64)
        y: np.ndarray = np.arange(k) if self.classifier else np.linspace(-1.0, 1.0, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if hasattr(self.estimator, "partial_fit"):
                self._partial_fit(x, y)
            else:
                self.estimator.fit(x, y)
        if not hasattr(self.estimator, "coefs_") and not hasattr(self.estimator, "coef_"):
            raise ConfigError(f"sklearn model {self.spec.name!r} ({type(self.estimator).__name__}) has neither "
                              "coef_ nor coefs_ after fitting: fedloom federates linear models and MLPs")
        if not hasattr(self.estimator, "coefs_"):  # linear models start at zero; an MLP keeps its seeded init
            self.set_arrays({k: np.zeros_like(v) for k, v in self.get_arrays().items()})

    def get_arrays(self) -> dict[str, np.ndarray]:
        """``coef``/``intercept`` (linear) or ``coefs.i``/``intercepts.i`` (MLP), float64."""
        est = self.estimator
        if hasattr(est, "coefs_"):
            out = {f"coefs.{i}": np.asarray(w, dtype=np.float64) for i, w in enumerate(est.coefs_)}
            out.update({f"intercepts.{i}": np.asarray(b, dtype=np.float64) for i, b in enumerate(est.intercepts_)})
            return out
        return {"coef": np.array(est.coef_, dtype=np.float64, ndmin=1),
                "intercept": np.array(est.intercept_, dtype=np.float64, ndmin=1)}

    def set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Load arrays of :meth:`get_arrays`'s layout (shapes checked) into the estimator."""
        mine = self.get_arrays()
        for name, arr in arrays.items():
            if name not in mine or np.shape(arr) != mine[name].shape:
                raise ConfigError(f"array {name!r} of shape {np.shape(arr)} does not fit this {self.spec.name} "
                                  f"model ({ {k: v.shape for k, v in mine.items()} })")
        est = self.estimator
        if hasattr(est, "coefs_"):
            est.coefs_ = [np.array(arrays[f"coefs.{i}"]) for i in range(len(est.coefs_))]
            est.intercepts_ = [np.array(arrays[f"intercepts.{i}"]) for i in range(len(est.intercepts_))]
            return
        coef, intercept = np.array(arrays["coef"]), np.array(arrays["intercept"])
        est.coef_ = coef.reshape(np.shape(est.coef_))
        est.intercept_ = intercept.reshape(np.shape(est.intercept_)) if np.ndim(est.intercept_) else float(intercept[0])

    # -- training and evaluation --------------------------------------------------------------------
    def train(self, x: np.ndarray, y: np.ndarray, *, epochs: int = 1, seed: int = 0) -> None:
        """Train in place from the loaded arrays on ``(x, y)``: ``epochs`` shuffled ``partial_fit`` passes,
        or one warm-started ``fit`` (with zero-weight rows of the classes missing from ``y``)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: a round is a few iterations by design
            if hasattr(self.estimator, "partial_fit"):
                rng = np.random.default_rng(seed)
                for _ in range(epochs):
                    order = rng.permutation(len(y))
                    self._partial_fit(x[order], y[order])
                return
            x_all, y_all, weight = self._with_missing_classes(x, y)
            self.estimator.fit(x_all, y_all, sample_weight=weight)

    def _partial_fit(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.classifier:
            self.estimator.partial_fit(x, y, classes=self.spec.classes)
        else:
            self.estimator.partial_fit(x, y)

    def _with_missing_classes(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        weight = np.ones(len(y))
        if not self.classifier:
            return x, y, weight
        missing = np.setdiff1d(self.spec.classes, y)
        if len(missing) == 0:
            return x, y, weight
        pad = np.zeros((len(missing), x.shape[1]), dtype=x.dtype)
        return np.vstack([x, pad]), np.concatenate([y, missing]), np.concatenate([weight, np.zeros(len(missing))])

    def scores(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, float]]:
        """``(loss, metrics)`` on ``(x, y)``: log loss, accuracy (and AUC for two classes), or MSE."""
        return evaluate_predictions(self.predict_proba(x) if self.classifier else self.estimator.predict(x), y,
                                    classification=self.classifier, classes=self.spec.classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities over the global classes (rows sum to 1)."""
        est = self.estimator
        if hasattr(est, "predict_proba"):
            return np.asarray(est.predict_proba(x), dtype=np.float64)
        margin = np.asarray(est.decision_function(x), dtype=np.float64)  # e.g. a hinge-loss SGDClassifier
        if margin.ndim == 1:
            margin = np.stack([-margin, margin], axis=1) / 2
        margin = margin - margin.max(axis=1, keepdims=True)
        p = np.exp(margin)
        return p / p.sum(axis=1, keepdims=True)


def evaluate_predictions(pred: np.ndarray, y: np.ndarray, *, classification: bool,
                         classes: np.ndarray) -> tuple[float, dict[str, float]]:
    """``(loss, metrics)`` of class probabilities (log loss, accuracy, AUC if binary) or values (MSE)."""
    if len(y) == 0:
        return 0.0, {}
    if not classification:
        return float(np.mean((np.asarray(pred, dtype=np.float64) - y) ** 2)), {}
    from sklearn.metrics import log_loss, roc_auc_score

    proba = np.clip(pred, 1e-12, 1.0)
    metrics = {"accuracy": float(np.mean(np.argmax(proba, axis=1) == y))}
    if len(classes) == 2 and len(np.unique(y)) == 2:
        metrics["auc"] = float(roc_auc_score(y, proba[:, 1]))
    return float(log_loss(y, proba, labels=classes)), metrics
