"""Who may open a stream now: per-identity rate limits, a cap on streams waiting for Hello, quiet refusals.

One client must not be able to keep the others out. :class:`Admission` gives every identity a
token bucket of connection attempts (``per_minute``, refilled evenly, a burst of a tenth of a
minute's worth) and a cap on its streams that have not said Hello yet; :class:`OncePer` keeps
the log readable by reporting a repeated event once per key and interval (a peer retrying with a
revoked certificate is logged once a minute, not on every attempt).

Example:
    >>> adm = Admission(max_before_hello=1, per_minute=60)
    >>> adm.enter("a")
    (True, '')
    >>> adm.enter("a")[0]  # a second stream before the first said Hello
    False
    >>> adm.leave("a"); adm.enter("a")[0]
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Admission", "OncePer"]


class Admission:
    """Per-identity limits on connection attempts and on streams before Hello (thread-safe).

    Args:
        max_before_hello: Streams one identity may hold open before their Hello arrives.
        per_minute: Connection attempts one identity may make per minute (burst: a tenth of that, at least 1).
        clock: Monotonic clock (tests).
    """

    def __init__(self, *, max_before_hello: int, per_minute: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_before_hello = max_before_hello
        self.per_minute = per_minute
        self.burst = max(1.0, per_minute / 10)
        self.clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, at)

    def enter(self, identity: str) -> tuple[bool, str]:
        """Count a new stream of ``identity``: ``(True, "")``, or ``(False, why)`` to refuse it."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(identity, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.per_minute / 60.0)
            if tokens < 1.0:
                self._buckets[identity] = (tokens, now)
                return False, (f"client {identity!r}: more than {self.per_minute} connection attempts a minute; "
                               "retry later")
            if self._waiting.get(identity, 0) >= self.max_before_hello:
                self._buckets[identity] = (tokens, now)
                return False, (f"client {identity!r} already has {self.max_before_hello} stream(s) waiting to say "
                               "Hello; close them or wait for their Hello deadline")
            self._buckets[identity] = (tokens - 1.0, now)
            self._waiting[identity] = self._waiting.get(identity, 0) + 1
            return True, ""

    def leave(self, identity: str) -> None:
        """The stream :meth:`enter` admitted said Hello or ended."""
        with self._lock:
            n = self._waiting.get(identity, 0) - 1
            if n > 0:
                self._waiting[identity] = n
            else:
                self._waiting.pop(identity, None)

    def waiting(self, identity: str) -> int:
        """Streams of ``identity`` still waiting for their Hello."""
        with self._lock:
            return self._waiting.get(identity, 0)


class OncePer:
    """``first(key)`` is True at most once per ``interval_s`` for each key (for rate-limited logging).

    Args:
        interval_s: Interval per key.
        max_keys: Keys remembered; the oldest are forgotten beyond it (memory stays bounded).
    """

    def __init__(self, interval_s: float = 60.0, *, max_keys: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def first(self, key: str) -> tuple[bool, int]:
        """``(whether to report now, how many were suppressed since the last report)``."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            if len(self._last) >= self.max_keys:
                oldest = min(self._last, key=self._last.__getitem__)
                self._last.pop(oldest)
                self._suppressed.pop(oldest, None)
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)
