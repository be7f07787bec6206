"""The default backend: runs clients one after another in this process.

Clients are built lazily from the client factory for each task and dropped afterwards, so memory
grows with the number of clients sampled in a round, not with the number that exist.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from fedloom.backends.registry import BACKENDS
from fedloom.core.client import ClientFn
from fedloom.core.parameters import ParamSpec
from fedloom.core.pool import PoolResult, call_fit, payload_nbytes
from fedloom.core.strategy import Failure
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes

__all__ = ["InlinePool"]

log = logging.getLogger(__name__)


class InlinePool:
    """Run each task by calling ``client_fn(cid).fit(...)`` in this process.

    Args:
        client_fn: Factory ``cid -> Client``.
        num_clients: Clients ``"0" .. str(num_clients - 1)`` exist.
    """

    def __init__(self, client_fn: ClientFn, num_clients: int) -> None:
        self.client_fn = client_fn
        self._ids = [str(i) for i in range(num_clients)]

    def available(self) -> list[ClientId]:
        return self._ids

    def fit(
        self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None, timeout: float | None = None
    ) -> PoolResult[FitRes]:
        out: PoolResult[FitRes] = PoolResult()
        for cid, ins in tasks:
            out.stats.bytes_down += payload_nbytes(ins)
            start = time.perf_counter()
            try:
                res = call_fit(self.client_fn(cid), ins)
            except Exception as exc:  # a client's fault is that client's failure, not the round's
                log.warning("client %s failed in fit: %s: %s", cid, type(exc).__name__, exc)
                out.failures.append(Failure(cid, f"{type(exc).__name__}: {exc}"))
                continue
            if timeout is not None and time.perf_counter() - start > timeout:
                out.failures.append(Failure(cid, f"missed the {timeout:.1f}s deadline"))
                continue
            out.stats.bytes_up += payload_nbytes(res)
            out.results.append((cid, res))
        return out

    def evaluate(
        self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *, timeout: float | None = None
    ) -> PoolResult[EvaluateRes]:
        out: PoolResult[EvaluateRes] = PoolResult()
        for cid, ins in tasks:
            out.stats.bytes_down += ins.parameters.nbytes
            try:
                res = self.client_fn(cid).evaluate(ins.parameters, ins.config)
            except Exception as exc:
                log.warning("client %s failed in evaluate: %s: %s", cid, type(exc).__name__, exc)
                out.failures.append(Failure(cid, f"{type(exc).__name__}: {exc}"))
                continue
            out.results.append((cid, res))
        return out

    def close(self) -> None:
        pass


@BACKENDS.register("inline", help="In this process, one client after another (the default, lowest overhead).")
def _inline_pool(client_fn: ClientFn, num_clients: int, **_: object) -> InlinePool:
    return InlinePool(client_fn, num_clients)
