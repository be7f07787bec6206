"""Reuse one ``nn.Module`` for the clients a process runs one after another.

Building a model costs more than a training step of a small one (module construction plus random
initialisation that the loaded global weights overwrite at once). In simulation every client has
the same architecture and a task always starts by loading the global parameters into every entry
of the ``state_dict``, so clients run one at a time can share one module. The cache is
per thread, so clients running at the same time in different threads never share a module, and
it is dropped when pickled, so each Ray worker builds its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["ModelCache"]


class ModelCache:
    """A ``model_fn`` that builds the model once per thread and then returns the same module.

    Only for clients that load all of the module's state before using it (as
    :class:`~fedloom.torch.TorchClient` does) and do not modify the module's structure (hooks,
    wrappers); pass the plain ``model_fn`` for anything else.

    Example:
        >>> cache = ModelCache(lambda: nn.Linear(2, 1))
        >>> cache() is cache()
        True
        >>> cache.builds
        1
    """

    def __init__(self, model_fn: Callable[[], nn.Module]) -> None:
        self.model_fn = model_fn
        self.builds = 0
        self._local = threading.local()

    def __call__(self) -> nn.Module:
        model = getattr(self._local, "model", None)
        if model is None:
            model = self._local.model = self.model_fn()
            self.builds += 1
        return model

    def __getstate__(self) -> dict[str, Any]:
        return {"model_fn": self.model_fn}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model_fn = state["model_fn"]
        self.builds = 0
        self._local = threading.local()
