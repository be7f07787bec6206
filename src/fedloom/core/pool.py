"""The backend interface (here in core, shared by the round loop and every backend): a pool of clients
that runs tasks and reports results and failures.

The round loop talks only to a :class:`ClientPool`; the in-process, vectorized, Ray and gRPC
backends all implement it. A pool never raises for a client's fault: exceptions and timeouts come back as
:class:`~fedloom.core.strategy.Failure` entries. The round loop validates every result (names,
shapes, dtypes, finiteness) after the pool returns it, so each backend gets the same checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from fedloom.core.client import Client
from fedloom.core.parameters import ParamSpec
from fedloom.core.strategy import Failure
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes

__all__ = ["ClientPool", "PoolResult", "TaskStats", "call_fit", "payload_nbytes"]

R = TypeVar("R")


@dataclass
class TaskStats:
    """Bytes moved for one batch of tasks (payload as serialized, summed over clients)."""

    bytes_down: int = 0
    bytes_up: int = 0


@dataclass
class PoolResult(Generic[R]):
    """Outcome of running a batch of tasks: successful results in task order, and failures."""

    results: list[tuple[ClientId, R]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stats: TaskStats = field(default_factory=TaskStats)


class ClientPool(Protocol):
    """Runs client tasks somewhere (this process, a Ray cluster, remote machines)."""

    def available(self) -> list[ClientId]:
        """Ids of the clients that can take a task now."""
        ...

    def fit(
        self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None, timeout: float | None
    ) -> PoolResult[FitRes]:
        """Run training tasks. ``expected`` is the spec of valid parameters, for backends that can
        reject a bad update early (e.g. before reading a whole stream); ``None`` means no early check
        (compressed payloads). The loop validates every result again."""
        ...

    def evaluate(
        self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *, timeout: float | None
    ) -> PoolResult[EvaluateRes]:
        """Run evaluation tasks."""
        ...

    def close(self) -> None:
        """Release resources (processes, connections)."""
        ...


def payload_nbytes(message: FitIns | FitRes | EvaluateIns) -> int:
    """Array payload of a message: parameters plus every extra, in bytes."""
    return message.parameters.nbytes + sum(p.nbytes for p in getattr(message, "extras", {}).values())


def call_fit(client: Client, ins: FitIns) -> FitRes:
    """Run one training task on a client: the one place every backend calls a client, so all of
    them hand clients exactly the same task (side payloads in ``ins.extras`` included)."""
    return client.fit_task(ins)
