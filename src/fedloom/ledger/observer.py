"""The ledger during a run: :class:`LedgerPool` hashes every update as it arrives on the server,
:class:`LedgerObserver` writes one signed entry per completed round and makes the clients' receipts.

The pool wrapper sits directly on the transport (inside SecAgg+, so it hashes the masked inputs the
server really receives); the loop tells the observer which results it validated and which clients
failed (``on_fit_results``) and, when the round completes, the new model (``on_round_end``). A
round that fails writes nothing; its retry overwrites what was hashed for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.pool import ClientPool, PoolResult
from fedloom.core.strategy import Failure, ServerState
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes
from fedloom.ledger.chain import LEDGER_FILE, LedgerWriter, updates_root
from fedloom.ledger.hashing import canonical_json, parameters_digest, result_digest
from fedloom.ledger.receipts import RECEIPT_EXTRA, counts_as_update, encode_receipt, make_receipt

__all__ = ["LedgerObserver", "LedgerPool", "AGGREGATE_IDS"]

AGGREGATE_IDS = frozenset({"secagg"})
"""Result ids that stand for an aggregate, not a client (SecAgg+'s one result)."""


class LedgerObserver:
    """Write ``ledger.jsonl`` in ``run_dir``: one signed, chained entry per completed round.

    Args:
        run_dir: The run directory.
        key: The server's Ed25519 signing key.
        rule: The aggregation rule and its hyperparameters (recorded in every entry).
        receipts: Make a signed receipt per sampled client after each round (deployment), sent by
            :class:`LedgerPool` with that client's next task.
    """

    def __init__(self, run_dir: Any, key: Ed25519PrivateKey, rule: dict[str, Any], *, receipts: bool = False) -> None:
        from pathlib import Path

        self.writer = LedgerWriter(Path(run_dir) / LEDGER_FILE, key)
        self.key = key
        self.rule = _jsonable(rule)
        self.receipts = receipts
        self.pending_receipts: dict[ClientId, dict[str, Any]] = {}
        self._received: dict[int, dict[ClientId, dict[str, Any]]] = {}
        self._fit: dict[int, tuple[str, list[ClientId], list[Failure]]] = {}
        self._digest_cache: tuple[Parameters, str] | None = None
        self.hash_s = 0.0
        """Seconds spent hashing updates and models and signing, over the run."""
        self.rounds: list[dict[str, float]] = []
        """Per round: ``hash_s`` (updates and models), ``sign_s`` (entry, receipts, write), ``bytes`` (entry line)."""
        self._round_hash_s = 0.0

    # -- told by the pool and the loop -------------------------------------------------------
    def received(self, rnd: int, cid: ClientId, res: FitRes) -> None:
        """Hash an update as it arrives (called by :class:`LedgerPool`)."""
        start = time.perf_counter()
        digest = result_digest(res)
        self._received.setdefault(rnd, {})[cid] = {"client": cid, "update": digest, "examples": int(res.num_examples)}
        self._round_hash_s += time.perf_counter() - start

    def on_fit_results(self, rnd: int, previous: Parameters, results: Sequence[tuple[ClientId, FitRes]],
                       failures: Sequence[Failure]) -> None:
        """The results the loop validated (to be aggregated) and the failures of round ``rnd``."""
        aggregated = [cid for cid, _ in results if cid not in AGGREGATE_IDS]
        if len(aggregated) < len(results):  # SecAgg+: every received masked input is in the sum
            bad = {f.cid for f in failures if f.reason.startswith("secagg mask")}
            aggregated = [cid for cid in self._received.get(rnd, {}) if cid not in bad]
        self._fit[rnd] = (self._digest(previous), sorted(aggregated), list(failures))

    def on_round_end(self, record: Any, state: ServerState) -> None:
        """Sign and append the entry of the completed round (and make the receipts)."""
        rnd = record.round
        if self.writer.next_index and rnd <= self.writer.last_round:
            self.writer.restart()  # a fresh run in a folder that holds an older ledger
        before, clients, failures = self._fit.pop(rnd, (self._digest(state.parameters), [], []))
        received = self._received.pop(rnd, {})
        for old in [r for r in self._received if r < rnd]:
            del self._received[old]
        updates = [received[c] for c in sorted(received)]
        start = time.perf_counter()
        after = self._digest(state.parameters)
        hash_s = self._round_hash_s + time.perf_counter() - start
        self._round_hash_s = 0.0
        metrics = record.metrics
        fields: dict[str, Any] = {
            "round": rnd,
            "time": round(time.time(), 3),
            "model_before": before,
            "model_after": after,
            "clients": clients,
            "updates": updates,
            "tree_size": len(updates),
            "merkle_root": updates_root(updates),
            "rule": self.rule,
            "failures": [{"client": f.cid, "reason": f.reason} for f in failures],
            "epsilon": _finite(metrics.get("epsilon")),
            "metrics": {k: _finite(metrics[k]) for k in ("accuracy", "loss") if k in metrics},
        }
        start = time.perf_counter()
        entry = self.writer.append(fields)
        if self.receipts:
            for cid in {*received, *clients, *(f.cid for f in failures)} - AGGREGATE_IDS:
                self.pending_receipts[cid] = make_receipt(entry, cid, self.key)
        sign_s = time.perf_counter() - start
        self.hash_s += hash_s + sign_s
        self.rounds.append({"round": rnd, "hash_s": hash_s, "sign_s": sign_s,
                            "bytes": float(len(canonical_json(entry)) + 1)})

    def cost(self) -> dict[str, float]:
        """Mean cost per round: seconds hashing, seconds signing and writing, bytes of ledger."""
        n = max(1, len(self.rounds))
        return {key: sum(r[key] for r in self.rounds) / n for key in ("hash_s", "sign_s", "bytes")}

    def _digest(self, params: Parameters) -> str:
        if self._digest_cache is not None and self._digest_cache[0] is params:
            return self._digest_cache[1]
        start = time.perf_counter()
        digest = parameters_digest(params)
        self._round_hash_s += time.perf_counter() - start
        self._digest_cache = (params, digest)
        return digest


class LedgerPool:
    """A :class:`~fedloom.core.pool.ClientPool` wrapper on the transport: hashes each update received
    and, with receipts on, sends each client its pending receipt with its next training task."""

    def __init__(self, inner: ClientPool, ledger: LedgerObserver) -> None:
        self.inner = inner
        self.ledger = ledger

    def available(self) -> list[ClientId]:
        return self.inner.available()

    def fit(self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None,
            timeout: float | None) -> PoolResult[FitRes]:
        if self.ledger.receipts and self.ledger.pending_receipts:
            tasks = [(cid, self._with_receipt(cid, ins)) for cid, ins in tasks]
        out = self.inner.fit(tasks, expected=expected, timeout=timeout)
        config = {cid: ins.config for cid, ins in tasks}
        for cid, res in out.results:
            cfg = config.get(cid, {})
            if counts_as_update(cfg):
                self.ledger.received(int(cfg.get("round", 0)), cid, res)
        return out

    def _with_receipt(self, cid: ClientId, ins: FitIns) -> FitIns:
        receipt = self.ledger.pending_receipts.pop(cid, None)
        if receipt is None:
            return ins
        return FitIns(ins.parameters, ins.config, {**ins.extras, RECEIPT_EXTRA: encode_receipt(receipt)})

    def evaluate(self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *,
                 timeout: float | None) -> PoolResult[EvaluateRes]:
        return self.inner.evaluate(tasks, timeout=timeout)

    def close(self, *args: Any) -> None:
        self.inner.close(*args)

    def __getattr__(self, name: str) -> Any:  # the transport's own surface (port, snapshot, ...)
        return getattr(self.inner, name)


def _finite(value: Any) -> float | str | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return _finite(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)
