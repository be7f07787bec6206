"""Backends that run client tasks: in-process by default; more register in :data:`BACKENDS`."""

from fedloom.backends.base import ClientPool, PoolResult, TaskStats
from fedloom.backends.inline import InlinePool
from fedloom.backends.ray import RayPool
from fedloom.backends.vectorized import VectorizedPool

BACKENDS: tuple[str, ...] = ("inline", "vectorized", "ray")
"""Names accepted by ``--backend``."""

__all__ = ["BACKENDS", "ClientPool", "InlinePool", "PoolResult", "RayPool", "TaskStats", "VectorizedPool"]
