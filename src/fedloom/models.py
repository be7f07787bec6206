"""Built-in models and user models by import path.

A model factory is called with keyword arguments describing the data: ``num_features``,
``num_outputs`` and ``image_shape`` (``(C, H, W)`` or ``None``). User factories named as
``"package.module:factory"`` receive whichever of those keywords they accept.

Example:
    >>> net = build_model("mlp", num_features=64, num_outputs=10)
    >>> sum(p.numel() for p in net.parameters())
    9610
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

from fedloom.core.registry import Registry
from fedloom.errors import ConfigError

if TYPE_CHECKING:  # torch is imported when a model is built, not when fedloom starts
    from torch import nn

__all__ = ["MODELS", "build_model", "model_factory"]


MODELS: Registry[Callable[..., nn.Module]] = Registry("model", modules=["fedloom.models"])
"""Built-in model names accepted by ``--model`` (besides ``package.module:factory``)."""


@MODELS.register("linear")
def linear(*, num_features: int, num_outputs: int, **_: object) -> nn.Module:
    """Linear/logistic regression: one affine layer (softmax lives in the loss)."""
    from torch import nn

    return nn.Linear(num_features, num_outputs)


MODELS.register("logistic", linear, help="Alias of linear: logistic regression through the cross-entropy loss.")


@MODELS.register("mlp")
def mlp(*, num_features: int, num_outputs: int, hidden: int = 128, **_: object) -> nn.Module:
    """Two-layer perceptron ``features -> hidden -> outputs`` with ReLU (``--hidden`` units)."""
    from torch import nn

    return nn.Sequential(nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, num_outputs))


@MODELS.register("cnn")
def cnn(
    *, num_features: int, num_outputs: int, image_shape: tuple[int, int, int] | None = None, **_: object
) -> nn.Module:
    """A small CNN for images (two conv blocks, as in the FedAvg paper's MNIST CNN, scaled down).

    Rows arrive flat and are reshaped to ``image_shape``; works for 28x28 MNIST and 8x8 digits.
    """
    from torch import nn

    if image_shape is None:
        raise ConfigError("model 'cnn' needs image data (digits or mnist); use 'mlp' for tabular data")
    c, h, w = image_shape
    pool = 2 if min(h, w) >= 16 else 1
    return nn.Sequential(
        nn.Unflatten(1, image_shape),
        nn.Conv2d(c, 16, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(pool),
        nn.Conv2d(16, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(pool),
        nn.Flatten(),
        nn.Linear(32 * (h // pool // pool) * (w // pool // pool), 128),
        nn.ReLU(),
        nn.Linear(128, num_outputs),
    )


def _not_torch(name: str) -> Callable[..., nn.Module]:
    def build(**_: object) -> nn.Module:
        raise ConfigError(f"model {name!r} is not a PyTorch module: fedloom.app.tabular builds it, not build_model")

    return build


# Models that are not PyTorch modules (docs/tabular.md): listed here so --model's help shows them.
MODELS.register("xgboost", _not_torch("xgboost"),
                help="Gradient-boosted trees (XGBoost; --strategy xgb-bagging, xgb-cyclic or xgb-histogram).")
for _name, _text in (("logistic", "LogisticRegression"), ("sgd", "SGDClassifier (log loss)"),
                     ("sgd-regressor", "SGDRegressor"), ("ridge", "Ridge"), ("mlp", "MLPClassifier")):
    MODELS.register(f"sklearn:{_name}", _not_torch(f"sklearn:{_name}"),
                    help=f"scikit-learn {_text}, federated by its arrays (or sklearn:package.module:factory).")


def model_factory(name: str) -> Callable[..., nn.Module]:
    """Resolve a built-in name or a ``"package.module:factory"`` import path."""
    if name in MODELS:
        return MODELS.get(name)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import model module {module_name!r}: {exc}") from exc
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise ConfigError(f"{module_name!r} has no callable {attr!r}")
        return factory
    raise ConfigError(f"unknown model {name!r}; choose one of: {MODELS.choices()}, or 'package.module:factory'")


def build_model(name: str, **spec: object) -> nn.Module:
    """Build a model by name, passing the data-description keywords it accepts."""
    factory = model_factory(name)
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        spec = {k: v for k, v in spec.items() if k in params}
    model = factory(**spec)
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {name!r} returned {type(model).__name__}, not an nn.Module")
    return model
