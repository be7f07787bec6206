"""The asynchronous loop: FedBuff and FedAsync over any :class:`~fedloom.core.pool.ClientPool`.

The server keeps ``concurrency`` clients training at all times. Each task carries the model
version it was given (``model_version`` in its config; the server also keeps it itself, per task,
so a client cannot misreport its staleness). When a result arrives its staleness is
``s = current version - its version``; an update staler than ``max_staleness`` is dropped (and
counted, ``dropped_stale``). Then:

* **FedBuff** (Nguyen et al., "Federated Learning with Buffered Asynchronous Aggregation",
  AISTATS 2022, arXiv:2106.06639): arrivals wait in a buffer; every ``buffer_size`` of them the
  server aggregates their deltas ``w_i - w_{version_i}`` with the strategy's aggregator, weights
  ``n_i * staleness(s_i)``, scales the result by ``sum(n_i staleness(s_i)) / sum(n_i)`` (so that
  staleness discounts the step, not only the mix) and applies it with the strategy's server
  optimizer (:meth:`FedAvg.apply_update <fedloom.strategies.FedAvg.apply_update>`). The
  strategy's norm bound and weight caps apply as in a synchronous round.
* **FedAsync** (Xie et al., "Asynchronous Federated Optimization", arXiv:1903.03934): every
  arrival moves the model, ``w <- (1 - a_s) w + a_s w_client`` with ``a_s = alpha * staleness(s)``,
  applied as the update ``a_s (w_client - w)`` through the server optimizer (plain mixing with the
  default ``sgd(1.0)``).

A *server update* (one aggregation) is what ``--rounds`` counts; every update gets a history
record (``client_updates`` so far, ``staleness_mean``/``staleness_max`` of the updates it used,
``dropped_stale`` and ``fit_failures`` so far, ``virtual_time_s``), evaluation every
``eval_every`` updates, a checkpoint and the observers, as a synchronous round does.

Time. In simulation (:class:`VirtualDriver`) a dispatched task runs at once in the pool, on the
model version it was given, and its result is released at its *virtual* completion time
(``now + timing.duration_s``); results completing at the same time are released in dispatch order
before any new dispatch. The whole run is a deterministic function of the seed, and a checkpoint
holds the tasks in flight (their results included), so resuming is exact. With
``buffer_size = concurrency`` = the cohort and every task equally long, the run is synchronous
FedAvg, number for number. In deployment (:class:`~fedloom.engine.async_realtime.RealtimeDriver`)
each task is a single-task ``pool.fit`` on a thread and results arrive when they arrive.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.pool import ClientPool
from fedloom.core.strategy import Failure, ServerState, Strategy, weighted_mean_metrics
from fedloom.core.types import ClientId, FitIns, FitRes
from fedloom.core.validation import DEFAULT_MAX_MODEL_CHANGE, check_global_model
from fedloom.engine.async_state import Progress, Task, load_async_checkpoint, save_async_checkpoint
from fedloom.engine.codec import RoundCodec, decode_results, encode_broadcast
from fedloom.engine.loop import (
    RoundObserver,
    RoundRecord,
    RunResult,
    _prefixed,
    _put,
    _put_central,
    _Snapshot,
    task_seed,
    validate_evaluate_results,
    validate_results,
)
from fedloom.errors import ConfigError, RoundFailedError, StopTraining, ValidationError

__all__ = ["AsyncLoop", "Timing", "EqualTiming", "VirtualDriver", "Task", "AGGREGATIONS"]

log = logging.getLogger(__name__)

AGGREGATIONS = ("fedbuff", "fedasync")


class Timing(Protocol):
    """Virtual durations and availability (:class:`fedloom.scenarios.heterogeneity.Heterogeneity`)."""

    def duration_s(self, cid: ClientId, ins: FitIns, res: FitRes | None) -> float: ...

    def is_available(self, cid: ClientId, t: float) -> bool: ...

    def next_change(self, t: float) -> float: ...


class EqualTiming:
    """Every task takes one virtual second; every client is always available."""

    def duration_s(self, cid: ClientId, ins: FitIns, res: FitRes | None) -> float:
        return 1.0

    def is_available(self, cid: ClientId, t: float) -> bool:
        return True

    def next_change(self, t: float) -> float:
        return t + 1.0


class VirtualDriver:
    """Simulation: tasks run at dispatch, results are released in virtual completion-time order."""

    realtime = False

    def __init__(self, timing: Timing | None = None) -> None:
        self.timing: Timing = timing or EqualTiming()
        self.now = 0.0
        self.heap: list[Task] = []

    @property
    def in_flight(self) -> list[Task]:
        return list(self.heap)

    def is_available(self, cid: ClientId) -> bool:
        return self.timing.is_available(cid, self.now)

    def launch(self, loop: AsyncLoop, tasks: list[tuple[Task, FitIns]], base: Parameters) -> None:
        done = loop.run_tasks(tasks, base)
        for task, ins in tasks:
            task.done_at = self.now + float(self.timing.duration_s(task.cid, ins, done[task.seq].res))
            heapq.heappush(self.heap, task)

    def due(self) -> Task | None:
        """The next result whose time has come (none: advance with :meth:`wait`)."""
        if self.heap and self.heap[0].done_at <= self.now:
            return heapq.heappop(self.heap)
        return None

    def wait(self) -> None:
        """Advance the clock to the next completion, or to the next availability change when idle."""
        self.now = self.heap[0].done_at if self.heap else self.timing.next_change(self.now)

    def restore(self, now: float, tasks: list[Task]) -> None:
        self.now = now
        self.heap = list(tasks)
        heapq.heapify(self.heap)

    def close(self) -> None:
        """Nothing runs in the background."""


class AsyncLoop:
    """Asynchronous federated training (FedBuff or FedAsync) of a FedAvg-family strategy.

    Args:
        strategy: A :class:`~fedloom.strategies.FedAvg` (or subclass): its aggregator, weight caps,
            norm bound, fit config, server optimizer and central evaluation are used.
        pool: Where tasks run.
        num_updates: Server updates (aggregations) of the run: what ``--rounds`` counts here.
        seed: Base seed of dispatch sampling and per-task seeds.
        aggregation: ``"fedbuff"`` or ``"fedasync"``.
        buffer_size: FedBuff: arrivals per server update.
        concurrency: Clients training at any time.
        staleness: ``staleness -> weight`` (:func:`fedloom.strategies.staleness.staleness_fn`).
        max_staleness: Updates staler than this are dropped (0: none are).
        alpha: FedAsync's mixing weight, in ``(0, 1]``.
        driver: :class:`VirtualDriver` (simulation; the default, with :class:`EqualTiming`) or a
            real-time driver.
        observers, checkpoint_path, round_timeout, eval_every, codec, max_model_change, client_states,
        evaluate_initial: As :class:`~fedloom.engine.loop.FederatedLoop`'s (``round_timeout``: per task).
    """

    def __init__(self, strategy: Strategy, pool: ClientPool, *, num_updates: int, seed: int = 0,
                 aggregation: str = "fedbuff", buffer_size: int = 10, concurrency: int = 10,
                 staleness: Callable[[int], float] = lambda s: 1.0, max_staleness: int = 0, alpha: float = 0.5,
                 driver: Any = None, observers: Sequence[RoundObserver] = (),
                 checkpoint_path: str | Path | None = None, round_timeout: float | None = None,
                 eval_every: int = 1, codec: RoundCodec | None = None,
                 max_model_change: float = DEFAULT_MAX_MODEL_CHANGE, client_states: ClientStateStore | None = None,
                 evaluate_initial: bool = True) -> None:
        for needed in ("apply_update", "client_weights", "aggregator", "round_fit_config"):
            if not hasattr(strategy, needed):
                raise ConfigError(f"asynchronous training needs a FedAvg-family strategy (with {needed}); "
                                  f"{type(strategy).__name__} is not one")
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if buffer_size < 1 or concurrency < 1 or max_staleness < 0 or not 0 < alpha <= 1:
            raise ConfigError("buffer_size and concurrency must be >= 1, max_staleness >= 0, alpha in (0, 1]")
        self.strategy: Any = strategy
        self.pool = pool
        self.num_rounds = num_updates
        self.seed = seed
        self.aggregation = aggregation
        self.buffer_size = buffer_size
        self.concurrency = concurrency
        self.staleness = staleness
        self.max_staleness = max_staleness
        self.alpha = alpha
        self.driver = driver if driver is not None else VirtualDriver()
        self.observers = list(observers)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.round_timeout = round_timeout
        self.eval_every = max(1, eval_every)
        self.codec = codec
        self.max_model_change = max_model_change
        self.client_states = client_states
        self.evaluate_initial = evaluate_initial
        self.progress = Progress()
        self.last_wait_s = 0.0  # a deployment's round recorder reads it (the async loop does not wait per round)
        self._expected: dict = {}
        self._since = time.perf_counter()
        self._waited = 0.0

    # -- running ---------------------------------------------------------------------------
    def run(self, initial_parameters: Parameters | None = None, *, state: ServerState | None = None,
            history: list[RoundRecord] | None = None) -> RunResult:
        """Run from ``state`` (resume, after :meth:`resume_state`) or ``initial_parameters`` to ``num_updates``."""
        initial: RoundRecord | None = None
        if state is None:
            if initial_parameters is None:
                raise ValueError("pass initial_parameters or a state to resume from")
            state = self.strategy.initialize(initial_parameters, seed=self.seed)
            self.progress = Progress()
            self.driver.restore(0.0, [])
            if self.evaluate_initial:
                central = self.strategy.evaluate(state, 0)
                if central is not None:
                    initial = RoundRecord(0)
                    _put_central(initial, central)
        history = list(history or [])
        self._expected = state.parameters.spec()
        self._since = time.perf_counter()
        self._waited = 0.0
        stopped: str | None = None
        try:
            while state.round < self.num_rounds and stopped is None:
                task = self.driver.due()
                if task is not None:
                    record = self._arrive(state, task)
                    if record is not None:
                        history.append(record)
                        stopped = self._after_update(state, record, history)
                    continue
                self._fill(state)
                self.driver.wait()
        finally:
            self.driver.close()
        return RunResult(state=state, history=history, stopped_early=stopped, initial=initial)

    def _fill(self, state: ServerState) -> None:
        """Dispatch the current model to idle available clients until ``concurrency`` are busy."""
        free = self.concurrency - len(self.driver.in_flight)
        if free <= 0:
            return
        busy = {t.cid for t in self.driver.in_flight}
        waiting = time.perf_counter()
        connected = self.pool.available()  # a deployment's pool may wait here for clients to connect
        self._waited += time.perf_counter() - waiting
        idle = [c for c in connected if c not in busy and self.driver.is_available(c)]
        k = min(free, len(idle))
        if k == 0:
            return
        # the draw of a synchronous round (core.sampling.sample_uniform), so equal speeds give FedAvg exactly
        chosen = idle if k == len(idle) else [idle[i] for i in np.sort(state.rng.choice(len(idle), size=k,
                                                                                         replace=False))]
        version, p = state.round, self.progress
        config = self.strategy.round_fit_config(state, version + 1)
        tasks: list[tuple[Task, FitIns]] = []
        for cid in chosen:
            nth = p.dispatches.get(cid, 0)
            p.dispatches[cid] = nth + 1
            who = cid if nth == 0 else f"{cid}#{nth}"  # a client sent twice at one version trains on other seeds
            task_config = {**config, "round": version + 1, "seed": task_seed(self.seed, version + 1, who),
                           "model_version": version}
            tasks.append((Task(p.next_seq, cid, version), FitIns(state.parameters, task_config)))
            p.next_seq += 1
        p.bases[version] = state.parameters
        self.driver.launch(self, tasks, state.parameters)

    def run_tasks(self, tasks: list[tuple[Task, FitIns]], base: Parameters) -> dict[int, Task]:
        """Run ``tasks`` in the pool now (one batch), decode and validate; fills each task's outcome."""
        pairs = [(t.cid, ins) for t, ins in tasks]
        if self.codec is not None:
            pairs = encode_broadcast(self.codec, pairs)
        fit = self.pool.fit(pairs, expected=self._expected if self.codec is None else None,
                            timeout=self.round_timeout)
        if self.codec is not None:
            fit.results, undecodable = decode_results(self.codec, fit.results, base)
            fit.failures.extend(undecodable)
        fit.results, rejected = validate_results(fit.results, self._expected)
        fit.failures.extend(rejected)
        results = dict(fit.results)
        reasons = {f.cid: f.reason for f in fit.failures}
        per_up = fit.stats.bytes_up // max(1, len(results))
        per_down = fit.stats.bytes_down // max(1, len(tasks))
        for task, _ in tasks:
            task.res = results.get(task.cid)
            task.failure = None if task.res is not None else reasons.get(task.cid, "no result")
            task.bytes_down, task.bytes_up = per_down, per_up if task.res is not None else 0
        return {t.seq: t for t, _ in tasks}

    # -- arrivals and server updates ---------------------------------------------------------
    def _arrive(self, state: ServerState, task: Task) -> RoundRecord | None:
        """Take one result; returns the record of the server update it completed, if any."""
        p = self.progress
        p.bytes_up += task.bytes_up
        p.bytes_down += task.bytes_down
        if task.res is None:
            p.failures += 1
            p.pending_failures.append(Failure(task.cid, task.failure or "no result"))
            self._prune_bases()
            return None
        stale = state.round - task.version
        if self.max_staleness and stale > self.max_staleness:
            p.dropped_stale += 1
            log.info("dropped the update of client %s: staleness %d > max_staleness %d", task.cid, stale,
                     self.max_staleness)
            self._prune_bases()
            return None
        p.buffer.append(task)
        if self.aggregation == "fedasync" or len(p.buffer) >= self.buffer_size:
            return self._update(state)
        return None

    def _update(self, state: ServerState) -> RoundRecord:
        """One server update from the buffer; the state is left as it was if it fails."""
        before = _Snapshot.of(state)
        try:
            return self._aggregate(state)
        except BaseException:
            before.restore(state)
            raise

    def _aggregate(self, state: ServerState) -> RoundRecord:
        from fedloom.strategies.fedavg import bound_update_norms, update_rows

        p, strategy = self.progress, self.strategy
        rnd = state.round + 1
        previous = state.parameters
        buffer = p.buffer
        results: list[tuple[ClientId, FitRes]] = [(t.cid, t.res) for t in buffer if t.res is not None]
        stale = [state.round - t.version for t in buffer]
        discount = np.array([float(self.staleness(s)) for s in stale], dtype=np.float64)
        if not (np.isfinite(discount).all() and (discount > 0).all()):
            raise ConfigError(f"the staleness function must give weights > 0, got {discount.tolist()}")
        bounded = 0
        if self.aggregation == "fedbuff":
            flat: dict[int, np.ndarray] = {}
            rows = []
            for t in buffer:
                if t.version not in flat:
                    flat[t.version] = p.bases[t.version].flatten()
                assert t.res is not None
                rows.append(update_rows([t.res.parameters], flat[t.version])[0])
            updates, bounded = bound_update_norms(rows, strategy.max_norm_ratio)
            base_weights = strategy.client_weights(results)
            weights = base_weights * discount
            delta = strategy.aggregator(updates, weights)
            scale = float(weights.sum() / base_weights.sum()) if base_weights.sum() > 0 else 1.0
            if scale != 1.0:
                delta = delta * scale
        else:
            (task,) = buffer
            assert task.res is not None
            mix = self.alpha * float(discount[0])
            delta = mix * update_rows([task.res.parameters], state.parameters.flatten())[0]
        strategy.apply_update(state, rnd, delta)
        try:
            check_global_model(previous, state.parameters, max_change=self.max_model_change)
        except ValidationError as exc:
            raise RoundFailedError(f"server update {rnd}: the new global model {exc}; the update is discarded") from exc
        state.round = rnd
        p.client_updates += len(buffer)
        record = RoundRecord(rnd, {"fit_clients": float(len(buffer)), "fit_failures": float(len(p.pending_failures)),
                                   "failures_total": float(p.failures),
                                   "client_updates": float(p.client_updates), "dropped_stale": float(p.dropped_stale),
                                   "staleness_mean": float(np.mean(stale)), "staleness_max": float(max(stale))})
        if bounded:
            record.metrics["fit_norm_bounded"] = float(bounded)
        counts = strategy.example_counts(results) if hasattr(strategy, "example_counts") else [
            float(r.num_examples) for _, r in results]
        for key, value in weighted_mean_metrics([(n, r.metrics) for n, (_, r) in
                                                  zip(counts, results, strict=True)]).items():
            _put(record, _prefixed("train_", key), value)
        p.buffer = []
        p.pending_failures = []
        p.dispatches = {}  # a new version: seeds start over
        self._prune_bases()
        self._evaluate(state, record)
        record.metrics["bytes_up"] = float(p.bytes_up)
        record.metrics["bytes_down"] = float(p.bytes_down)
        p.bytes_up = p.bytes_down = 0
        record.metrics["virtual_time_s"] = float(self.driver.now)
        now = time.perf_counter()
        record.metrics["wall_s"] = now - self._since - self._waited  # the work, not the wait for clients
        record.metrics["wait_s"] = self._waited
        self.last_wait_s, self._waited, self._since = self._waited, 0.0, now
        return record

    def _prune_bases(self) -> None:
        """Forget the model versions no task in flight or in the buffer trained from."""
        p = self.progress
        used = {t.version for t in self.driver.in_flight} | {t.version for t in p.buffer}
        p.bases = {v: b for v, b in p.bases.items() if v in used}

    def _evaluate(self, state: ServerState, record: RoundRecord) -> None:
        rnd = state.round
        if rnd % self.eval_every and rnd != self.num_rounds:
            return
        central = self.strategy.evaluate(state, rnd)
        if central is not None:
            _put_central(record, central)
        busy = {t.cid for t in self.driver.in_flight}  # federated evaluation asks idle clients only
        eval_tasks = self.strategy.configure_evaluate(state, rnd, [c for c in self.pool.available() if c not in busy])
        if not eval_tasks:
            return
        eval_tasks = [(cid, replace(ins, config={**ins.config, "round": rnd, "seed": task_seed(self.seed, rnd, cid)}))
                      for cid, ins in eval_tasks]
        if self.codec is not None:
            eval_tasks = encode_broadcast(self.codec, eval_tasks)
        ev = self.pool.evaluate(eval_tasks, timeout=self.round_timeout)
        ev.results, bad = validate_evaluate_results(ev.results)
        ev.failures.extend(bad)
        for key, value in self.strategy.aggregate_evaluate(state, rnd, ev.results, ev.failures).items():
            _put(record, f"fed_{key}", value)

    def _after_update(self, state: ServerState, record: RoundRecord, history: list[RoundRecord]) -> str | None:
        if self.checkpoint_path is not None:
            self._save(state, history)
        try:
            for obs in self.observers:
                obs.on_round_end(record, state)
        except StopTraining as stop:
            log.info("stopping after server update %d: %s", state.round, stop)
            return str(stop)
        return None

    # -- checkpoints -----------------------------------------------------------------------
    def _save(self, state: ServerState, history: list[RoundRecord]) -> None:
        assert self.checkpoint_path is not None
        in_flight = [] if self.driver.realtime else self.driver.in_flight  # real-time tasks are not resumable
        save_async_checkpoint(self.checkpoint_path, state, history, self.progress, in_flight, self.driver.now,
                              client_states=self.client_states)

    def resume_state(self) -> tuple[ServerState, list[RoundRecord]] | None:
        """The state and history at ``checkpoint_path`` (``None`` without one); restores the loop's own
        state (buffer, tasks in flight in simulation, counters, virtual clock) as well.

        Raises:
            ValidationError: the checkpoint does not fit this strategy or was not written by this loop.
        """
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return None
        state, history, self.progress, now, flying = load_async_checkpoint(
            self.checkpoint_path, self.strategy, seed=self.seed, client_states=self.client_states)
        self.driver.restore(now, flying)
        return state, history
