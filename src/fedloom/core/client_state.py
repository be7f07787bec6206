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

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from fedloom.core.atomic import atomic_write
from fedloom.core.parameters import Parameters
from fedloom.core.types import ClientId
from fedloom.errors import ValidationError

__all__ = ["ClientState", "ClientStateStore"]

_SEP = "\x1f"

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

    # -- persistence (a resumed simulation continues with its clients' state) -----------------
    def to_tensors(self, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, dict[str, list]]]:
        """Every non-empty entry as flat tensors (keys ``prefix + cid SEP entry SEP name``) and the layout
        that :meth:`load_tensors` reads back (exact shapes: safetensors stores 0-d arrays as (1,))."""
        tensors: dict[str, np.ndarray] = {}
        layout: dict[str, dict[str, list]] = {}
        for cid, state in self._states.items():
            if not state:
                continue
            if _SEP in cid:
                raise ValidationError(f"client id {cid!r} contains the separator character U+001F")
            layout[cid] = {}
            for entry, params in state.items():
                layout[cid][entry] = [(name, list(arr.shape)) for name, arr in params.items()]
                for name, arr in params.items():
                    tensors[prefix + _SEP.join((cid, entry, name))] = np.ascontiguousarray(arr)
        return tensors, layout

    def load_tensors(
        self, tensors: dict[str, np.ndarray], layout: dict[str, dict[str, list]], prefix: str = ""
    ) -> None:
        """Replace the store's contents with what :meth:`to_tensors` produced."""
        try:
            self._states = {
                cid: {
                    entry: Parameters({n: tensors[prefix + _SEP.join((cid, entry, n))].reshape(shape)
                                       for n, shape in entries})
                    for entry, entries in by_entry.items()
                }
                for cid, by_entry in layout.items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"malformed client-state data: {type(exc).__name__}: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Atomically write every entry to a safetensors file at ``path`` (no pickle; temp file, fsync,
        rename, directory fsync)."""
        tensors, layout = self.to_tensors()
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"fedloom.client_states": json.dumps(layout)}),
                     prefix=".clients-")

    def load(self, path: str | Path) -> None:
        """Replace the store's contents with what :meth:`save` wrote to ``path``."""
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as fh:
            raw = (fh.metadata() or {}).get("fedloom.client_states")
        if raw is None:
            raise ValidationError(f"{path} is not a fedloom client-state file")
        self.load_tensors(load_file(str(path)), json.loads(raw))
