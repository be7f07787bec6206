"""Per-client state that outlives one task: SCAFFOLD control variates, error-feedback residuals.

A deployed client is one long-lived process and keeps its state in memory. A simulated client is
rebuilt for every task, so its state lives in a :class:`ClientStateStore` keyed by client id; the
client factory hands each client its entry. Entries hold :class:`Parameters`, so they serialize
without pickle (a backend that runs clients elsewhere ships the entry with the task and writes
the returned entry back with :meth:`ClientStateStore.put`).

Example:
    >>> import numpy as np
    >>> store = ClientStateStore()
    >>> state = store.get("3")
    >>> state["residual"] = Parameters({"w": np.zeros(2)})
    >>> "residual" in store.get("3")
    True
"""

from __future__ import annotations

from fedloom.core.parameters import Parameters
from fedloom.core.types import ClientId

__all__ = ["ClientState", "ClientStateStore"]

ClientState = dict[str, Parameters]
"""One client's named state entries."""


class ClientStateStore:
    """In-memory per-client state for simulation; memory grows only with clients that have state."""

    def __init__(self) -> None:
        self._states: dict[ClientId, ClientState] = {}

    def get(self, cid: ClientId) -> ClientState:
        """The (mutable) state of ``cid``, created empty on first use."""
        return self._states.setdefault(cid, {})

    def put(self, cid: ClientId, state: ClientState) -> None:
        """Replace the state of ``cid`` (used by backends that run clients in other processes)."""
        self._states[cid] = state

    def __contains__(self, cid: object) -> bool:
        return cid in self._states

    def __len__(self) -> int:
        return len(self._states)

    @property
    def nbytes(self) -> int:
        """Memory held by all entries."""
        return sum(p.nbytes for s in self._states.values() for p in s.values())
