"""The backend registry (``--backend``): where client tasks run.

Each backend registers, in its own module, a factory
``(client_fn, num_clients, *, options: ExecutionOptions, client_states) -> ClientPool``.
``options`` carries the backend section of the config (Ray's address and resources, ...);
``client_states`` is the simulation's per-client state store, for backends that run clients in
other processes and must ship state along.
"""

from __future__ import annotations

from collections.abc import Callable

from fedloom.core.pool import ClientPool
from fedloom.core.registry import Registry

__all__ = ["BACKENDS", "BackendFactory"]

BackendFactory = Callable[..., ClientPool]

BACKENDS: Registry[BackendFactory] = Registry(
    "backend",
    modules=["fedloom.backends.inline", "fedloom.backends.vectorized", "fedloom.backends.ray"],
    package="fedloom.backends",
)
"""Backends by name; each module registers its factory and keeps heavy imports (torch.func, Ray) for
when a run uses it, so listing them stays cheap."""
