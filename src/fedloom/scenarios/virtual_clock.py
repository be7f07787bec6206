"""The synchronous round loop on a virtual clock: who is available, and how long each round takes.

:class:`VirtualClockPool` wraps the pool the round loop drives. ``available()`` returns the clients
the :class:`~fedloom.scenarios.heterogeneity.Heterogeneity` model has on at the current virtual
time (advancing the clock to the next change when none is); ``fit()`` runs the round's tasks in the
wrapped pool, then advances the clock by the slowest sampled client's virtual duration, or by the
deadline when one is set, in which case the clients slower than the deadline count as failures
(as a real server would drop them). ``VirtualClockPool.virtual_time_s`` is the clock after the last round;
the round loop records it in each round's history as ``virtual_time_s``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedloom.core.parameters import ParamSpec
from fedloom.core.pool import ClientPool, PoolResult
from fedloom.core.strategy import Failure
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes
from fedloom.scenarios.heterogeneity import Heterogeneity

__all__ = ["VirtualClockPool"]


class VirtualClockPool:
    """A :class:`~fedloom.core.pool.ClientPool` whose rounds take virtual time.

    Args:
        inner: The pool that runs the tasks.
        fleet: Speeds, availability and bandwidth of the clients.
        deadline_s: Virtual seconds a round waits (0: for the slowest sampled client).
        start_s: The clock at the start (a resumed run's last ``virtual_time_s``).
    """

    def __init__(self, inner: ClientPool, fleet: Heterogeneity, *, deadline_s: float = 0.0,
                 start_s: float = 0.0) -> None:
        self.inner = inner
        self.fleet = fleet
        self.deadline_s = deadline_s
        self.virtual_time_s = float(start_s)

    def available(self) -> list[ClientId]:
        clients = self.inner.available()
        for _ in range(100_000):
            on = [c for c in clients if self.fleet.is_available(c, self.virtual_time_s)]
            if on or not clients:
                return on
            self.virtual_time_s = self.fleet.next_change(self.virtual_time_s)
        return []

    def fit(self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None,
            timeout: float | None) -> PoolResult[FitRes]:
        out = self.inner.fit(tasks, expected=expected, timeout=timeout)
        sent = dict(tasks)
        durations = {cid: self.fleet.duration_s(cid, sent[cid], res) for cid, res in out.results if cid in sent}
        if self.deadline_s > 0:
            late = {cid for cid, d in durations.items() if d > self.deadline_s}
            out.failures.extend(Failure(cid, f"missed the {self.deadline_s:g}s virtual deadline") for cid in
                                sorted(late))
            out.results = [(cid, res) for cid, res in out.results if cid not in late]
            elapsed = self.deadline_s if late or out.failures else max(durations.values(), default=0.0)
        else:
            elapsed = max(durations.values(), default=0.0)
        self.virtual_time_s += elapsed
        return out

    def evaluate(self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *,
                 timeout: float | None) -> PoolResult[EvaluateRes]:
        return self.inner.evaluate(tasks, timeout=timeout)

    def close(self) -> None:
        self.inner.close()
