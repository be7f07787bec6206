"""Backends that run client tasks (:data:`BACKENDS`): in-process by default, a vectorized cohort
trainer, and Ray for clusters. The gRPC pool of deployment lives in :mod:`fedloom.net`.

Submodules load on first use, so choosing ``inline`` never imports torch.func or Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedloom.backends.registry import BACKENDS
from fedloom.core.pool import ClientPool, PoolResult, TaskStats

if TYPE_CHECKING:
    from fedloom.backends._vectorized import VectorizedPool
    from fedloom.backends.inline import InlinePool
    from fedloom.backends.ray import RayPool

__all__ = ["BACKENDS", "ClientPool", "InlinePool", "PoolResult", "RayPool", "TaskStats", "VectorizedPool", "make_pool"]

_LAZY = {"InlinePool": "fedloom.backends.inline", "RayPool": "fedloom.backends.ray",
         "VectorizedPool": "fedloom.backends._vectorized"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_pool(backend: str, client_fn: Any, num_clients: int, *, options: Any = None,
              client_states: Any = None) -> ClientPool:
    """The client pool of the backend named ``backend`` (see :data:`BACKENDS`)."""
    return BACKENDS.get(backend)(client_fn, num_clients, options=options, client_states=client_states)
