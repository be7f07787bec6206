"""The asynchronous loop in real time: for a deployment's pool (gRPC), where results arrive when they do.

:class:`RealtimeDriver` keeps each dispatched task as one single-task ``pool.fit([(cid, ins)])`` call on
a thread of its own, so ``concurrency`` clients train at once and the loop takes each result as it
finishes (the pool must accept concurrent ``fit`` calls: :class:`~fedloom.net.server.GrpcPool`
does, each call waits only on its own task). The model version of a task is kept here, by task,
not read back from the client, so a client cannot misreport its staleness. ``now`` is seconds since
the loop started (``virtual_time_s`` in the history is then real time). Tasks in flight are not
checkpointed: after a restart the clients simply get new tasks.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from fedloom.core.parameters import Parameters
from fedloom.core.types import ClientId, FitIns

__all__ = ["RealtimeDriver"]


class RealtimeDriver:
    """Run each task on a thread; release results in the order they finish.

    Args:
        concurrency: Tasks in flight at most (threads).
        poll_s: How long :meth:`wait` blocks when nothing is in flight (no client available yet).
    """

    realtime = True

    def __init__(self, concurrency: int, *, poll_s: float = 0.2) -> None:
        self._workers = max(1, concurrency)
        self._executor = self._new_executor()
        self._closed = False
        self._running: dict[Future[Any], Any] = {}
        self._ready: list[Any] = []
        self._t0 = time.monotonic()
        self._offset = 0.0
        self.poll_s = poll_s

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="fedloom-async")

    @property
    def now(self) -> float:
        return self._offset + time.monotonic() - self._t0

    @property
    def in_flight(self) -> list[Any]:
        return [*self._running.values(), *self._ready]

    def is_available(self, cid: ClientId) -> bool:
        return True  # the pool's available() already lists only connected clients

    def launch(self, loop: Any, tasks: list[tuple[Any, FitIns]], base: Parameters) -> None:
        for task, ins in tasks:
            future = self._executor.submit(loop.run_tasks, [(task, ins)], base)
            self._running[future] = task

    def due(self) -> Any:
        self._collect()
        if self._ready:
            task = self._ready.pop(0)
            task.done_at = self.now
            return task
        return None

    def wait(self) -> None:
        if self._running:
            wait(list(self._running), timeout=self.poll_s * 5, return_when=FIRST_COMPLETED)
        else:
            time.sleep(self.poll_s)

    def _collect(self) -> None:
        for future in [f for f in self._running if f.done()]:
            task = self._running.pop(future)
            exc = future.exception()
            if exc is not None:  # the pool turns client faults into failures; this is the server's own error
                task.res, task.failure = None, f"{type(exc).__name__}: {exc}"
            self._ready.append(task)

    def restore(self, now: float, tasks: list[Any]) -> None:
        """A fresh start or a resume: forget what was in flight (its results are ignored)."""
        self._running.clear()
        self._ready = []
        if self._closed:  # a deployment retrying after a failed update runs the loop again
            self._executor, self._closed = self._new_executor(), False
        self._t0 = time.monotonic()
        self._offset = now

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._closed = True
