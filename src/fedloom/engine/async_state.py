"""The asynchronous loop's own state and its checkpoint: tasks, the buffer, counters and the clock.

:func:`save_async_checkpoint` writes the server state with the loop's state in the same atomic
file (:func:`~fedloom.engine.checkpoint.save_checkpoint`): each task's result parameters (and
extras) and the model versions tasks trained from are extra named buffers, everything else JSON in
the checkpoint's ``extra["async"]``. :func:`load_async_checkpoint` reads it back, so a resumed
simulation continues exactly (tasks in flight keep the results they had).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure, ServerState
from fedloom.core.types import ClientId, FitRes
from fedloom.engine.checkpoint import load_checkpoint, load_client_states, restore_components, save_checkpoint
from fedloom.engine.loop import RoundRecord
from fedloom.errors import ValidationError

__all__ = ["Task", "Progress", "save_async_checkpoint", "load_async_checkpoint"]

_RES = "async_res"  # ServerState.buffers prefixes of the loop's own checkpointed arrays
_EXTRA = "async_extra"
_BASE = "async_base"


@dataclass
class Task:
    """One dispatched training task: who, from which model version, and (once known) its outcome."""

    seq: int
    cid: ClientId
    version: int
    done_at: float = 0.0
    res: FitRes | None = None
    failure: str | None = None
    bytes_down: int = 0
    bytes_up: int = 0

    def __lt__(self, other: Task) -> bool:
        return (self.done_at, self.seq) < (other.done_at, other.seq)


@dataclass
class Progress:
    """The loop's own state besides :class:`ServerState`: the buffer and counters (checkpointed)."""

    next_seq: int = 0
    buffer: list[Task] = field(default_factory=list)
    bases: dict[int, Parameters] = field(default_factory=dict)
    dispatches: dict[str, int] = field(default_factory=dict)  # per client, at the current version
    client_updates: int = 0
    dropped_stale: int = 0
    failures: int = 0
    pending_failures: list[Failure] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0


def save_async_checkpoint(path: Path, state: ServerState, history: list[RoundRecord], progress: Progress,
                          in_flight: list[Task], now: float, *, client_states: ClientStateStore | None) -> None:
    """Write ``state`` with the loop's ``progress``, ``in_flight`` tasks and clock ``now`` to ``path`` (one
    atomic write, with the simulated clients' state)."""
    p = progress
    tasks = [*in_flight, *p.buffer]
    buffers = dict(state.buffers)
    meta_tasks = []
    for t in tasks:
        if t.res is not None:
            buffers[f"{_RES}:{t.seq}"] = t.res.parameters
            for name, extra in t.res.extras.items():
                buffers[f"{_EXTRA}:{t.seq}:{name}"] = extra
        meta_tasks.append({"seq": t.seq, "cid": t.cid, "version": t.version, "done_at": t.done_at,
                           "num_examples": None if t.res is None else int(t.res.num_examples),
                           "metrics": None if t.res is None else _jsonable(t.res.metrics),
                           "failure": t.failure, "bytes_down": t.bytes_down, "bytes_up": t.bytes_up,
                           "buffered": t in p.buffer})
    for version, base in p.bases.items():
        buffers[f"{_BASE}:{version}"] = base
    meta = {"now": now, "next_seq": p.next_seq, "tasks": meta_tasks, "dispatches": p.dispatches,
            "client_updates": p.client_updates, "dropped_stale": p.dropped_stale, "failures": p.failures,
            "pending_failures": [[f.cid, f.reason] for f in p.pending_failures],
            "bytes_up": p.bytes_up, "bytes_down": p.bytes_down}
    save_checkpoint(path, replace(state, buffers=buffers),
                    {"history": [{"round": h.round, "metrics": h.metrics, "text": h.text} for h in history],
                     "async": meta},
                    client_states=client_states)


def load_async_checkpoint(path: Path, strategy: Any, *, seed: int, client_states: ClientStateStore | None
                          ) -> tuple[ServerState, list[RoundRecord], Progress, float, list[Task]]:
    """Read what :func:`save_async_checkpoint` wrote: the state (components typed against
    ``strategy.initialize``'s), history, progress, clock and the tasks in flight.

    Raises:
        ValidationError: the checkpoint does not fit this strategy or was not written by the async loop.
    """
    state, extra = load_checkpoint(path)
    meta = extra.get("async")
    if meta is None:
        raise ValidationError(f"{path} was written by the synchronous loop; resume it in synchronous mode (or "
                              "start the asynchronous run in another directory)")
    mine = {k: v for k, v in state.buffers.items() if k.split(":", 1)[0] in (_RES, _EXTRA, _BASE)}
    state.buffers = {k: v for k, v in state.buffers.items() if k not in mine}
    template = strategy.initialize(state.parameters, seed=seed).components
    try:
        state.components = restore_components(template, state.components)
    except ValidationError as exc:
        raise ValidationError(f"cannot resume {strategy!r} from {path}: {exc}") from exc
    history = [RoundRecord(int(h["round"]), dict(h["metrics"]), dict(h.get("text", {})))
               for h in extra.get("history", [])]
    if client_states is not None:
        load_client_states(path, client_states)
    p = Progress(next_seq=int(meta["next_seq"]),
                 dispatches={str(k): int(v) for k, v in meta["dispatches"].items()},
                 client_updates=int(meta["client_updates"]), dropped_stale=int(meta["dropped_stale"]),
                 failures=int(meta["failures"]),
                 pending_failures=[Failure(str(c), str(r)) for c, r in meta["pending_failures"]],
                 bytes_up=int(meta["bytes_up"]), bytes_down=int(meta["bytes_down"]))
    p.bases = {int(k.split(":", 1)[1]): v for k, v in mine.items() if k.startswith(_BASE + ":")}
    flying: list[Task] = []
    for m in meta["tasks"]:
        res = None
        if m["num_examples"] is not None:
            prefix = f"{_EXTRA}:{m['seq']}:"
            extras = {k[len(prefix):]: v for k, v in mine.items() if k.startswith(prefix)}
            res = FitRes(mine[f"{_RES}:{m['seq']}"], int(m["num_examples"]), dict(m["metrics"]), extras)
        task = Task(int(m["seq"]), str(m["cid"]), int(m["version"]), float(m["done_at"]), res, m["failure"],
                    int(m["bytes_down"]), int(m["bytes_up"]))
        (p.buffer if m["buffered"] else flying).append(task)
    return state, history, p, float(meta["now"]), flying


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
