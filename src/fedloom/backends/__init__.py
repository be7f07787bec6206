"""Backends that run client tasks: in-process by default; more register in :data:`BACKENDS`."""

from fedloom.backends.base import ClientPool, PoolResult, TaskStats
from fedloom.backends.inline import InlinePool

BACKENDS: tuple[str, ...] = ("inline",)
"""Names accepted by ``--backend``."""

__all__ = ["BACKENDS", "ClientPool", "InlinePool", "PoolResult", "TaskStats"]
