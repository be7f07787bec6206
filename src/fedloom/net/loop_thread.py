"""One asyncio event loop running in one background thread, driven from ordinary threads.

The deployment server (:mod:`fedloom.net.server`) serves every client from one event loop, so its
threads do not grow with the number of connected clients; the round loop and other callers stay
synchronous and reach the event loop through :meth:`LoopThread.run` (wait for a coroutine) and
:meth:`LoopThread.post` (schedule a callback, from any thread).

Example:
    >>> import asyncio
    >>> lt = LoopThread("doc")
    >>> async def add(a, b):
    ...     await asyncio.sleep(0)
    ...     return a + b
    >>> lt.run(add(1, 2))
    3
    >>> lt.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread named ``fedloom-<name>``; stopped by :meth:`stop`.

    Args:
        name: The thread's name, after ``fedloom-``.
        start: Start the thread now. Until :meth:`start`, :meth:`run` runs coroutines on the caller's
            thread and :meth:`post` queues callbacks for when the loop starts, so an object that is
            built but never started (or closed) holds no thread.
    """

    def __init__(self, name: str, *, start: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._started = False
        self._thread = threading.Thread(target=self._main, name=f"fedloom-{name}", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start the loop's thread (once)."""
        if not self._started and not self.loop.is_closed():
            self._started = True
            self._thread.start()
            self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in tasks:
                t.cancel()
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def in_loop(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self._thread

    @property
    def alive(self) -> bool:
        """True while the loop's thread runs."""
        return self._thread.is_alive() and not self.loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait (up to ``timeout`` seconds) for its result (not from the loop)."""
        if self.in_loop:
            raise RuntimeError("LoopThread.run called from its own loop (it would wait for itself)")
        if not self._started:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no loop runs on this thread: run it here, no thread needed yet
                return self.loop.run_until_complete(coro)
            self.start()
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Call ``fn(*args)`` on the loop (at once when already on it); False when the loop has stopped."""
        if self.in_loop:
            fn(*args)
            return True
        if not self._started and not self.loop.is_closed():
            self.loop.call_soon(fn, *args)
            return True
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (cancelling what still runs on it) and wait up to ``timeout`` for its thread."""
        if not self._started:
            self._started = True  # never to start now
            if not self.loop.is_closed():
                self.loop.close()
            return
        if self._thread.is_alive() and not self.in_loop:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
