"""The backend interface; defined in :mod:`fedloom.core.pool` and re-exported here for backends."""

from fedloom.core.pool import ClientPool, PoolResult, TaskStats, call_fit, payload_nbytes

__all__ = ["ClientPool", "PoolResult", "TaskStats", "call_fit", "payload_nbytes"]
