"""The round loop: transport-agnostic federated training.

Each round: the strategy picks clients and instructions, the pool runs them, the strategy
aggregates, the new global model is checked, the global model is evaluated, the state is
checkpointed and observers are told. The same loop drives simulation (in-process, vectorized, Ray)
and deployment (gRPC).

A round that fails (too few valid results, a new global model that is not finite or moved
absurdly far, an error anywhere in the round) leaves the :class:`ServerState` exactly as it was
before the round (parameters, components, buffers, values, round and RNG), so nothing of it is
checkpointed and a retry starts from the last good state.

Evaluation: before round 1 of a fresh run the initial model is evaluated centrally (round 0,
:attr:`RunResult.initial`); each evaluated round records central evaluation (``loss``,
``accuracy``, ...), federated evaluation (``fed_*``, with ``fed_clients`` and ``fed_failures``)
and clients' training metrics (``train_*``). Numeric metrics go to :attr:`RoundRecord.metrics`,
string metrics to :attr:`RoundRecord.text`, each evaluating client's own values to
:attr:`RoundRecord.clients`. When a run evaluates nothing at all (no central ``evaluate_fn`` and
``fraction_evaluate = 0``) the loop says so once, in the log.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.pool import ClientPool
from fedloom.core.results import as_evaluate_res
from fedloom.core.strategy import Failure, ServerState, Strategy
from fedloom.core.types import ClientId, Config, EvaluateRes, FitRes
from fedloom.core.validation import (
    DEFAULT_MAX_MODEL_CHANGE,
    check_evaluate_result,
    check_fit_result,
    check_global_model,
)
from fedloom.engine.checkpoint import load_checkpoint, load_client_states, restore_components, save_checkpoint
from fedloom.engine.codec import RoundCodec, decode_results, encode_broadcast
from fedloom.errors import RoundFailedError, StopTraining, ValidationError

__all__ = ["RoundRecord", "RunResult", "RoundObserver", "FederatedLoop", "task_seed", "validate_results",
           "validate_evaluate_results", "per_client_metrics"]

log = logging.getLogger(__name__)


@dataclass
class RoundRecord:
    """Metrics of one completed round: ``loss``/``accuracy`` are central evaluation, ``fed_*``
    federated evaluation, ``train_*`` what clients reported, plus ``wall_s`` and ``bytes_*``.
    ``text`` holds the string-valued metrics (a central evaluation's or a strategy's), by the same
    naming."""

    round: int
    metrics: dict[str, float] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    clients: dict[ClientId, dict[str, float]] = field(default_factory=dict)
    """Federated evaluation per client: ``{cid: {"loss": ..., "num_examples": ..., "accuracy": ..., ...}}``
    (each client's own held-out split; numeric metrics only). Empty when the round evaluated no client."""

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, **self.metrics, **self.text}


@dataclass
class RunResult:
    """Final state and per-round history of a run."""

    state: ServerState
    history: list[RoundRecord]
    stopped_early: str | None = None
    initial: RoundRecord | None = None
    """Central evaluation of the initial model (round 0), when the strategy evaluates centrally."""

    @property
    def parameters(self) -> Parameters:
        return self.state.parameters

    @property
    def final(self) -> dict[str, float]:
        """The last round's metrics (empty when no round ran)."""
        return dict(self.history[-1].metrics) if self.history else {}


class RoundObserver(Protocol):
    """Told about every completed round; may raise :class:`~fedloom.errors.StopTraining`."""

    def on_round_end(self, record: RoundRecord, state: ServerState) -> None: ...


def task_seed(seed: int, rnd: int, cid: ClientId) -> int:
    """Seed of one client task: the same in every backend and every process."""
    return zlib.crc32(f"{seed}:{rnd}:{cid}".encode()) & 0x7FFFFFFF


class FederatedLoop:
    """Run rounds of a strategy over a client pool, with evaluation, checkpoints and observers.

    Args:
        strategy: The algorithm.
        pool: Where client tasks run.
        num_rounds: Total rounds of the run (a resumed run continues up to this number).
        seed: Base seed for sampling and per-task client seeds.
        observers: Receivers of each round's record (progress bars, metric stores, accountants).
        checkpoint_path: If set, the state is written here atomically after every round.
        round_timeout: Seconds each client task may take; slower clients count as failures.
        eval_every: Central/federated evaluation every this many rounds (and after the last).
        codec: Optional transport hook: compresses the broadcast and decodes (compressed) client
            results before they are validated (see :mod:`fedloom.engine.codec`).
        max_model_change: A round whose new global model moved more than this many times the
            previous model's L2 norm (floored at 1) fails (0: no bound); a non-finite new model
            always fails (:func:`~fedloom.core.validation.check_global_model`).
        client_states: The simulated clients' state store (SCAFFOLD's ``c_i``, DP-SGD step counts,
            error-feedback residuals), written into the same checkpoint file as the server state,
            in the same atomic write, and restored by :meth:`resume_state`.
        evaluate_initial: Evaluate the initial model centrally before round 1 of a fresh run
            (round 0, :attr:`RunResult.initial`).
    """

    def __init__(
        self,
        strategy: Strategy,
        pool: ClientPool,
        *,
        num_rounds: int,
        seed: int = 0,
        observers: Sequence[RoundObserver] = (),
        checkpoint_path: str | Path | None = None,
        round_timeout: float | None = None,
        eval_every: int = 1,
        codec: RoundCodec | None = None,
        max_model_change: float = DEFAULT_MAX_MODEL_CHANGE,
        client_states: ClientStateStore | None = None,
        evaluate_initial: bool = True,
    ) -> None:
        if max_model_change < 0:
            raise ValueError(f"max_model_change must be >= 0 (0 = no bound), got {max_model_change}")
        self.strategy = strategy
        self.pool = pool
        self.num_rounds = num_rounds
        self.seed = seed
        self.observers = list(observers)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.round_timeout = round_timeout
        self.eval_every = max(1, eval_every)
        self.codec = codec
        self.max_model_change = max_model_change
        self.client_states = client_states
        self.evaluate_initial = evaluate_initial
        self._evaluated_anything = False
        self._noted_nothing = False
        self.last_wait_s = 0.0
        """Seconds the last round waited in ``pool.available()`` (excluded from its ``wall_s``)."""

    def resume_state(self) -> tuple[ServerState, list[RoundRecord]] | None:
        """The state and history stored at ``checkpoint_path``, if a checkpoint exists.

        The typed components (optimizer moments, control variates, ...) are rebuilt against the
        ones ``strategy.initialize`` makes for the stored parameters (same types and fields). With
        ``client_states``, the clients' state saved in the same checkpoint is loaded into it (so it
        belongs to the same round as the server state).

        Raises:
            ValidationError: the checkpoint's components do not fit this strategy.
        """
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return None
        state, extra = load_checkpoint(self.checkpoint_path)
        template = self.strategy.initialize(state.parameters, seed=self.seed).components
        try:
            state.components = restore_components(template, state.components)
        except ValidationError as exc:
            raise ValidationError(f"cannot resume {self.strategy!r} from {self.checkpoint_path}: {exc}") from exc
        history = [RoundRecord(int(h["round"]), dict(h["metrics"]), dict(h.get("text", {})), dict(h.get("clients", {})))
                   for h in extra.get("history", [])]
        if self.client_states is not None and not load_client_states(self.checkpoint_path, self.client_states):
            log.info("the checkpoint %s holds no client state (written without it)", self.checkpoint_path)
        return state, history

    def run(
        self,
        initial_parameters: Parameters | None = None,
        *,
        state: ServerState | None = None,
        history: list[RoundRecord] | None = None,
    ) -> RunResult:
        """Run from ``state`` (resume) or from ``initial_parameters`` (fresh) to ``num_rounds``."""
        initial: RoundRecord | None = None
        if state is None:
            if initial_parameters is None:
                raise ValueError("pass initial_parameters or a state to resume from")
            state = self.strategy.initialize(initial_parameters, seed=self.seed)
            if self.evaluate_initial:
                initial = self.evaluate_round0(state)
        history = list(history or [])
        expected = state.parameters.spec()
        stopped: str | None = None
        for rnd in range(state.round + 1, self.num_rounds + 1):
            record = self.run_round(state, rnd, expected)
            history.append(record)
            if self.checkpoint_path is not None:
                save_checkpoint(
                    self.checkpoint_path,
                    state,
                    {"history": [{"round": h.round, "metrics": h.metrics, "text": h.text, "clients": h.clients}
                                 for h in history]},
                    client_states=self.client_states,
                )
            try:
                for obs in self.observers:
                    obs.on_round_end(record, state)
            except StopTraining as stop:
                stopped = str(stop)
                log.info("stopping after round %d: %s", rnd, stopped)
                break
        return RunResult(state=state, history=history, stopped_early=stopped, initial=initial)

    def evaluate_round0(self, state: ServerState) -> RoundRecord | None:
        """Central evaluation of the initial model (round 0); ``None`` when the strategy has none."""
        central = self.strategy.evaluate(state, 0)
        if central is None:
            return None
        record = RoundRecord(0)
        _put_central(record, central)
        log.info("round 0 (initial model): %s", {**record.metrics, **record.text})
        return record

    def run_round(self, state: ServerState, rnd: int, expected: dict) -> RoundRecord:
        """One full round; updates ``state`` in place and returns its record.

        If the round fails (any exception), ``state`` is restored to what it was before the round
        and the exception propagates.
        """
        before = _Snapshot.of(state)
        try:
            return self._round(state, rnd, expected)
        except BaseException:
            before.restore(state)
            raise

    def _round(self, state: ServerState, rnd: int, expected: dict) -> RoundRecord:
        previous = state.parameters
        waiting = time.perf_counter()
        clients = self.pool.available()  # asked once: a deployment pool may wait here for enough clients
        start = time.perf_counter()  # wall_s is the round's work, not the wait for clients to connect
        self.last_wait_s = start - waiting
        spec = self.strategy.result_spec(state, expected)  # None: a layout the strategy checks itself
        tasks = self.strategy.configure_fit(state, rnd, clients)
        tasks = [(cid, _with_task_keys(ins, rnd, self.seed, cid)) for cid, ins in tasks]
        if self.codec is not None:
            tasks = encode_broadcast(self.codec, tasks)
        # A compressed payload has its own names and shapes, so pools may check early only without a codec.
        early_spec = spec if self.codec is None else None
        fit = self.pool.fit(tasks, expected=early_spec, timeout=self.round_timeout)
        num_fit_tasks, num_returned = len(tasks), len(fit.results)
        if self.codec is not None:
            fit.results, undecodable = decode_results(self.codec, fit.results, state.parameters)
            fit.failures.extend(undecodable)
        fit.results, rejected = validate_results(fit.results, spec)
        fit.failures.extend(rejected)
        for obs in self.observers:  # observers that keep per-client records (the ledger, contribution scores)
            seen = getattr(obs, "on_fit_results", None)
            if seen is not None:
                seen(rnd, previous, fit.results, fit.failures)
        # Who could have been sampled and who was: the accountant and the summary see the real cohort.
        record = RoundRecord(rnd, {"clients_available": float(len(clients)), "clients_sampled": float(num_fit_tasks)})
        metrics = record.metrics
        for key, value in self.strategy.aggregate_fit(state, rnd, fit.results, fit.failures).items():
            _put(record, _prefixed("train_", key), value)
        try:
            check_global_model(previous, state.parameters, max_change=self.max_model_change)
        except ValidationError as exc:
            raise RoundFailedError(
                f"round {rnd}: the new global model {exc}; the round is discarded and the previous state "
                "kept. A client's update or example count probably overwhelmed the aggregate: keep the "
                "weight and norm caps on (--max-weight-ratio, --max-norm-ratio) or use a robust aggregator"
            ) from exc
        state.round = rnd
        bytes_up, bytes_down = fit.stats.bytes_up, fit.stats.bytes_down

        if rnd % self.eval_every == 0 or rnd == self.num_rounds:
            central = self.strategy.evaluate(state, rnd)
            if central is not None:
                _put_central(record, central)
            eval_tasks = self.strategy.configure_evaluate(state, rnd, clients)
            self._note_if_nothing_evaluated(rnd, central is not None or bool(eval_tasks))
            if eval_tasks:
                eval_tasks = [(cid, _with_task_keys(ins, rnd, self.seed, cid)) for cid, ins in eval_tasks]
                if self.codec is not None:
                    eval_tasks = encode_broadcast(self.codec, eval_tasks)
                ev = self.pool.evaluate(eval_tasks, timeout=self.round_timeout)
                ev.results, bad = validate_evaluate_results(ev.results)
                ev.failures.extend(bad)
                for key, value in self.strategy.aggregate_evaluate(state, rnd, ev.results, ev.failures).items():
                    _put(record, f"fed_{key}", value)
                record.clients = per_client_metrics(ev.results)
                bytes_down += ev.stats.bytes_down
        metrics["bytes_up"] = float(bytes_up)
        metrics["bytes_down"] = float(bytes_down)
        # Per training client: mean fit payload received and sent (evaluation traffic excluded).
        metrics["bytes_down_per_client"] = fit.stats.bytes_down / max(1, num_fit_tasks)
        metrics["bytes_up_per_client"] = fit.stats.bytes_up / max(1, num_returned)
        metrics["wall_s"] = time.perf_counter() - start
        clock = getattr(self.pool, "virtual_time_s", None)  # a heterogeneous fleet's virtual clock, if any
        if clock is not None:
            metrics["virtual_time_s"] = float(clock)
        return record

    def _note_if_nothing_evaluated(self, rnd: int, evaluated: bool) -> None:
        """Say once, at the last round, when the whole run evaluated nothing."""
        self._evaluated_anything |= evaluated
        if rnd == self.num_rounds and not self._evaluated_anything and not self._noted_nothing:
            self._noted_nothing = True
            log.warning("nothing was evaluated in this run: the strategy has no central evaluate_fn and samples "
                        "no clients for federated evaluation (fraction_evaluate = 0); pass evaluate_fn=... or "
                        "fraction_evaluate > 0 to see a loss or an accuracy")


def per_client_metrics(results: Sequence[tuple[ClientId, EvaluateRes]]) -> dict[ClientId, dict[str, float]]:
    """Each evaluating client's loss, example count and numeric metrics, by client id."""
    out: dict[ClientId, dict[str, float]] = {}
    for cid, res in results:
        row = {"loss": float(res.loss), "num_examples": float(res.num_examples)}
        row.update({k: float(v) for k, v in res.metrics.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
        out[str(cid)] = row
    return out


def validate_results(
    results: Sequence[tuple[ClientId, FitRes]], expected: ParamSpec | None
) -> tuple[list[tuple[ClientId, FitRes]], list[Failure]]:
    """Split results into valid ones and failures (wrong names/shapes/dtypes, NaN/inf, bad counts)."""
    return _split(results, lambda res: check_fit_result(res, expected), "update")


def validate_evaluate_results(
    results: Sequence[tuple[ClientId, EvaluateRes]],
) -> tuple[list[tuple[ClientId, EvaluateRes]], list[Failure]]:
    """Split federated-evaluation results into valid ones and failures (NaN/inf loss or metrics,
    bad example counts, an accuracy outside [0, 1]); ``(loss, num_examples, metrics)`` tuples are
    converted to :class:`EvaluateRes` first."""
    converted: list[tuple[ClientId, Any]] = []
    for cid, res in results:
        try:
            converted.append((cid, as_evaluate_res(res)))
        except ValidationError:
            converted.append((cid, res))  # rejected with its reason below
    return _split(converted, check_evaluate_result, "evaluation")


R = TypeVar("R")


def _split(
    results: Sequence[tuple[ClientId, R]], check: Callable[[R], None], what: str
) -> tuple[list[tuple[ClientId, R]], list[Failure]]:
    """The results ``check`` accepts, and a failure (with the reason) for each one it rejects."""
    valid: list[tuple[ClientId, R]] = []
    rejected: list[Failure] = []
    for cid, res in results:
        try:
            check(res)
        except Exception as exc:
            log.warning("rejected %s from client %s: %s", what, cid, exc)
            rejected.append(Failure(cid, f"invalid {what}: {exc}"))
        else:
            valid.append((cid, res))
    return valid, rejected


@dataclass(frozen=True)
class _Snapshot:
    """What a round may change in a :class:`ServerState`, kept by reference: parameters and
    component records are replaced by strategies, never mutated (their documented contract), so a
    reference is enough to restore them; the dicts that hold them are copied."""

    parameters: Parameters
    round: int
    rng_state: Mapping[str, Any]
    buffers: dict[str, Parameters]
    values: dict[str, Any]
    components: dict[str, Any]

    @classmethod
    def of(cls, state: ServerState) -> _Snapshot:
        return cls(state.parameters, state.round, state.rng.bit_generator.state, dict(state.buffers),
                   dict(state.values), dict(state.components))

    def restore(self, state: ServerState) -> None:
        state.parameters, state.round = self.parameters, self.round
        state.rng.bit_generator.state = self.rng_state
        state.buffers.clear()
        state.buffers.update(self.buffers)
        state.values.clear()
        state.values.update(self.values)
        state.components.clear()
        state.components.update(self.components)


def _with_task_keys(ins: Any, rnd: int, seed: int, cid: ClientId) -> Any:
    config: Config = dict(ins.config)
    config.setdefault("round", rnd)
    config.setdefault("seed", task_seed(seed, rnd, cid))
    return dataclasses.replace(ins, config=config)


def _prefixed(prefix: str, key: str) -> str:
    if key.startswith(prefix) or key.startswith("fit_"):
        return key
    return prefix + key


def _put(record: RoundRecord, key: str, value: object) -> None:
    """Record a metric: numbers (and bools) in ``metrics``, strings in ``text``; anything else is a
    :class:`TypeError` naming it."""
    if isinstance(value, str):
        record.text[key] = value
    elif isinstance(value, (int, float)) or hasattr(value, "__float__"):
        record.metrics[key] = float(value)  # type: ignore[arg-type]
    else:
        raise TypeError(f"metric {key!r} must be a number or a string, got {type(value).__name__}: {value!r}")


def _put_central(record: RoundRecord, central: EvaluateRes) -> None:
    """A central evaluation's loss (unless it has none: NaN) and metrics, under their own names."""
    if not math.isnan(float(central.loss)):
        record.metrics["loss"] = float(central.loss)
    for key, value in central.metrics.items():
        _put(record, key, value)
