"""The vectorized backend: train a whole cohort of same-architecture clients at once.

Small models waste a CPU (or GPU) when trained one client at a time: every step is a handful of
tiny kernels dominated by dispatch overhead. This backend stacks the parameters of every client in
a round along a new leading dimension and runs each local step for all clients in one batched
forward and backward pass with :func:`torch.func.functional_call` under :func:`torch.func.vmap`.

The per-client math is the same as sequential training by :class:`~fedloom.torch.TorchClient`:
each client draws its batches in the same order (``torch.randperm`` from a generator seeded with
the task's ``seed``; the last batch of an epoch is smaller), computes the mean loss over its own
batch and takes a plain SGD step with its own learning rate. Clients with fewer examples or epochs
have fewer steps: their missing batch rows are padding, masked out of the loss, and a step with no
real rows leaves the client's parameters unchanged. Results match the inline backend to float
tolerance (summation order differs).

Clients it cannot vectorize run inline, one by one, after a warning that says why: clients that
are not plain ``TorchClient`` (subclasses may change ``fit``), tasks whose trainer (the client
half of the algorithm, :mod:`fedloom.core.trainer`) is not plain SGD epochs (FedProx's proximal
term, SCAFFOLD's correction, DP-SGD, an attack, a user trainer: ``trainer.vectorizable`` is
false), data given as a ``DataLoader``, BatchNorm in train mode (batch statistics and running
buffers are per-client state of the forward pass), dropout (random numbers would differ from
sequential training), optimizers other than plain SGD, and loss functions other than the
built-in cross-entropy and MSE.

The implementation is in :mod:`fedloom.backends._vectorized` and loads (with ``torch.func``) when
the backend is first used, so listing the backends (``fedloom run --help``) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedloom.backends.registry import BACKENDS
from fedloom.core.client import ClientFn
from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.backends._vectorized import VectorizedFallbackWarning, VectorizedPool, why_not_vectorizable

__all__ = ["VectorizedFallbackWarning", "VectorizedPool", "why_not_vectorizable"]

__getattr__, __dir__ = lazy_exports(__name__, {name: "fedloom.backends._vectorized" for name in __all__})


@BACKENDS.register("vectorized", help="A whole cohort at once with torch.func (falls back inline, saying why).")
def _vectorized_pool(client_fn: ClientFn, num_clients: int, **_: Any) -> VectorizedPool:
    from fedloom.backends._vectorized import VectorizedPool

    return VectorizedPool(client_fn, num_clients)
