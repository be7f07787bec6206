"""Client optimizers by name (``--optimizer``): each entry turns the training options into an
``OptimizerFn`` ``(params, lr) -> torch.optim.Optimizer`` for :class:`~fedloom.TorchClient`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedloom.core.registry import Registry

__all__ = ["OPTIMIZERS"]

OPTIMIZERS: Registry[Callable[[Any], Callable[..., Any]]] = Registry("optimizer", modules=["fedloom.torch.optimizers"])


@OPTIMIZERS.register("sgd", help="SGD with --momentum (0: plain SGD, which the vectorized backend can batch).")
def sgd(options: Any) -> Callable[..., Any]:
    import torch

    momentum = options.momentum
    return lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=momentum)


@OPTIMIZERS.register("adam", help="Adam with torch's default betas.")
def adam(options: Any) -> Callable[..., Any]:
    import torch

    return lambda params, lr: torch.optim.Adam(params, lr=lr)
