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

BACKENDS: Registry[BackendFactory] = Registry("backend")
# Built-ins are listed by name here and each module (which registers its factory itself) loads when a
# run asks for it: the vectorized backend needs torch.func, Ray is an optional extra.
BACKENDS.register_lazy("inline", "fedloom.backends.inline:_inline_pool",
                       help="In this process, one client after another (the default, lowest overhead).")
BACKENDS.register_lazy("vectorized", "fedloom.backends.vectorized:_vectorized_pool",
                       help="A whole cohort at once with torch.func (falls back inline, saying why).")
BACKENDS.register_lazy("ray", "fedloom.backends.ray:_ray_pool",
                       help="Ray actors, on a local Ray or a cluster (--ray-address).")
