"""Who took part in which round: a pool wrapper that records every task's outcome per client.

A deployed server wraps its :class:`~fedloom.net.server.GrpcPool` in :class:`ParticipationPool`;
the run directory then records, per round and client, whether its training (``fit``) and
evaluation (``evaluate``) tasks returned a result or failed, and why (disconnected, deadline,
the client's own error, a rejected message). A result the round loop rejects later (NaN, wrong
shapes) is counted in that round's ``fit_failures`` and logged with its reason.

A round that fails and is retried records again: the attempt that completed the round is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedloom.core.parameters import ParamSpec
from fedloom.core.pool import ClientPool, PoolResult
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes

__all__ = ["Participation", "ParticipationPool"]


@dataclass(frozen=True)
class Participation:
    """One task's outcome: ``status`` is ``"ok"`` or ``"failed"`` (then ``reason`` says why)."""

    round: int
    client: str
    task: str
    status: str
    reason: str = ""


class ParticipationPool:
    """A :class:`~fedloom.core.pool.ClientPool` that forwards to ``inner`` and records outcomes.

    Args:
        inner: The pool that runs the tasks.
    """

    def __init__(self, inner: ClientPool) -> None:
        self.inner = inner
        self.records: dict[tuple[int, str, str], Participation] = {}

    def available(self) -> list[ClientId]:
        return self.inner.available()

    def fit(self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None,
            timeout: float | None) -> PoolResult[FitRes]:
        result = self.inner.fit(tasks, expected=expected, timeout=timeout)
        self._record("fit", tasks, result)
        return result

    def evaluate(self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *, timeout: float | None
                 ) -> PoolResult[EvaluateRes]:
        result = self.inner.evaluate(tasks, timeout=timeout)
        self._record("evaluate", tasks, result)
        return result

    def close(self, *args: Any, **kwargs: Any) -> None:
        self.inner.close(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # port, connected(), ... of the wrapped pool
        return getattr(self.inner, name)

    def _record(self, task: str, tasks: Sequence[tuple[ClientId, Any]], result: PoolResult[Any]) -> None:
        rounds = {str(cid): int(ins.config.get("round", 0)) for cid, ins in tasks}
        for cid, _ in result.results:
            self._put(Participation(rounds.get(str(cid), 0), str(cid), task, "ok"))
        for failure in result.failures:
            self._put(Participation(rounds.get(str(failure.cid), 0), str(failure.cid), task, "failed",
                                    str(failure.reason)))

    def _put(self, p: Participation) -> None:
        self.records[(p.round, p.client, p.task)] = p

    def take(self) -> list[Participation]:
        """The outcomes recorded since the last call, in round and client order."""
        out = [self.records[k] for k in sorted(self.records)]
        self.records.clear()
        return out
