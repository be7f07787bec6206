"""The run directory: resolved config, per-round metrics (SQLite), summary, model, checkpoint.

Layout of ``runs/<name>/``::

    config.toml          the resolved configuration (re-runnable with --config)
    metrics.sqlite       table rounds(round, name, value): every numeric metric of every round;
                         texts(round, name, value): string metrics (e.g. a user evaluation's);
                         clients(round, client, name, value): each client's federated evaluation;
                         a deployed server's also participation(round, client, task, status, reason)
    summary.json         {"status": "completed" | "failed", "final": {...}, "history": [...],
                         "config": {...}, "wall_s": ...} (+ "error" when failed, "participation"
                         of a deployed server, "labels" of a classification run, "initial": the
                         initial model's central evaluation, round 0; "clients": each client's result of the
                         last federated evaluation and their spread, fedloom.runs.clients)
    labels.json          class index -> label name (and client -> group of --group-column), if any
    model.safetensors    the final global model
    checkpoint.safetensors  server state after the last completed round (for --resume)
    accuracy.png, loss.png, ...  plots (see fedloom.runs.plots)

The config, summary and model are written atomically (temp file, fsync, rename, directory fsync:
:mod:`fedloom.core.atomic`), so a crash leaves the previous file or the new one, never a torn one;
metrics.sqlite is transactional.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from safetensors.numpy import save_file

from fedloom.core.atomic import atomic_write, atomic_write_text
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.engine import RoundRecord, RunResult
from fedloom.runs.clients import clients_block

if TYPE_CHECKING:
    from fedloom.runs.participation import Participation

__all__ = ["RunStore", "new_run_dir", "read_history"]


def new_run_dir(root: str | Path = "runs", label: str = "run") -> Path:
    """A fresh, uniquely named directory under ``root``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(root)
    for i in range(1000):
        path = root / f"{stamp}-{label}" if i == 0 else root / f"{stamp}-{label}-{i}"
        if not path.exists():
            path.mkdir(parents=True)
            return path
    raise RuntimeError(f"could not create a run directory under {root}")


class RunStore:
    """Writes a run's artefacts; also a round observer that records metrics as they arrive."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.db_path = self.path / "metrics.sqlite"
        with sqlite3.connect(self.db_path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS rounds (round INTEGER, name TEXT, value REAL, "
                       "PRIMARY KEY (round, name))")
            db.execute("CREATE TABLE IF NOT EXISTS texts (round INTEGER, name TEXT, value TEXT, "
                       "PRIMARY KEY (round, name))")
            db.execute("CREATE TABLE IF NOT EXISTS participation (round INTEGER, client TEXT, task TEXT, "
                       "status TEXT, reason TEXT, PRIMARY KEY (round, client, task))")
            db.execute("CREATE TABLE IF NOT EXISTS clients (round INTEGER, client TEXT, name TEXT, value REAL, "
                       "PRIMARY KEY (round, client, name))")

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.safetensors"

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.path / "config.toml", tomli_w.dumps(config))

    def on_round_end(self, record: RoundRecord, state: ServerState) -> None:
        with sqlite3.connect(self.db_path) as db:
            db.executemany(
                "INSERT OR REPLACE INTO rounds (round, name, value) VALUES (?, ?, ?)",
                [(record.round, k, float(v)) for k, v in record.metrics.items()],
            )
            db.executemany("INSERT OR REPLACE INTO texts (round, name, value) VALUES (?, ?, ?)",
                           [(record.round, k, str(v)) for k, v in record.text.items()])
            db.executemany("INSERT OR REPLACE INTO clients (round, client, name, value) VALUES (?, ?, ?, ?)",
                           [(record.round, cid, k, float(v)) for cid, row in record.clients.items()
                            for k, v in row.items()])

    def read_clients(self) -> dict[int, dict[str, dict[str, float]]]:
        """Per evaluated round, each client's federated-evaluation values: ``{round: {cid: {name: value}}}``."""
        out: dict[int, dict[str, dict[str, float]]] = {}
        with sqlite3.connect(self.db_path) as db:
            for rnd, cid, name, value in db.execute("SELECT round, client, name, value FROM clients ORDER BY round"):
                out.setdefault(rnd, {}).setdefault(cid, {})[name] = value
        return out

    def write_participation(self, records: Sequence[Participation]) -> None:
        """Record task outcomes (a later attempt of the same round replaces an earlier one)."""
        with sqlite3.connect(self.db_path) as db:
            db.executemany("INSERT OR REPLACE INTO participation (round, client, task, status, reason) "
                           "VALUES (?, ?, ?, ?, ?)",
                           [(p.round, p.client, p.task, p.status, p.reason) for p in records])

    def read_participation(self, rounds: int | None = None) -> dict[str, dict[str, Any]]:
        """Per client: the rounds it trained in, and its failures with their reasons (up to ``rounds``)."""
        out: dict[str, dict[str, Any]] = {}
        with sqlite3.connect(self.db_path) as db:
            rows = db.execute("SELECT round, client, task, status, reason FROM participation ORDER BY round, client")
            for rnd, client, task, status, reason in rows:
                if rounds is not None and rnd > rounds:
                    continue
                entry = out.setdefault(client, {"fit_rounds": [], "evaluate_rounds": [], "failures": []})
                if status == "ok":
                    entry[f"{task}_rounds"].append(rnd)
                else:
                    entry["failures"].append({"round": rnd, "task": task, "reason": reason})
        return out

    def write_labels(self, labels: dict[str, Any]) -> None:
        """``labels.json``: how text labels and groups were encoded (``fedloom data`` shows the same)."""
        atomic_write_text(self.path / "labels.json", json.dumps(labels, indent=2))

    def mark_failed(self, error: BaseException, config: dict[str, Any], wall_s: float) -> dict[str, Any]:
        """Write a ``summary.json`` that says the run failed, with the rounds it completed."""
        history = read_history(self.path)
        summary: dict[str, Any] = {
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "final": _final_of_rows(history),
            "history": history,
            "config": config,
            "wall_s": wall_s,
        }
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2))
        return summary

    def write_model(self, parameters: Parameters) -> None:
        tensors = {k: v for k, v in parameters.items()}
        atomic_write(self.path / "model.safetensors", lambda tmp: save_file(tensors, tmp), mode=0o644)

    def write_summary(self, result: RunResult, config: dict[str, Any], wall_s: float,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
        history = [h.as_dict() for h in result.history]
        final = final_metrics(result.history)
        summary: dict[str, Any] = {
            "status": "completed",
            "final": final,
            "history": history,
            "config": config,
            "wall_s": wall_s,
            "bytes": {
                "up": int(sum(h.metrics.get("bytes_up", 0) for h in result.history)),
                "down": int(sum(h.metrics.get("bytes_down", 0) for h in result.history)),
            },
        }
        if result.stopped_early:
            summary["stopped_early"] = result.stopped_early
        if result.initial is not None:  # round 0: the initial model, evaluated centrally
            summary["initial"] = result.initial.as_dict()
        clients = clients_block(result.history)  # how each client fares (federated evaluation, last round)
        if clients is not None:
            summary["clients"] = clients
        summary.update(extra or {})
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2))
        return summary


def final_metrics(history: list[RoundRecord]) -> dict[str, float]:
    """Final accuracy/loss (and AUC where the evaluation reports one, e.g. binary scikit-learn and XGBoost
    models): central evaluation if any, else federated, from the last evaluated round."""
    return _final_of_rows([r.metrics for r in history])


def _final_of_rows(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    for m in reversed(rows):
        if "loss" in m:
            return {k: m[k] for k in ("accuracy", "auc", "loss") if k in m}  # auc: binary tabular models
        if "fed_loss" in m:
            out = {"loss": m["fed_loss"]}
            if "fed_accuracy" in m:
                out["accuracy"] = m["fed_accuracy"]
            return out
    return {}


def read_history(path: str | Path, *, text: bool = False) -> list[dict[str, Any]]:
    """Rows ``{"round": r, metric: value, ...}`` from a run's ``metrics.sqlite``.

    Args:
        path: The run directory.
        text: Also the string-valued metrics (a user's evaluation may report e.g. a class name);
            off by default, so every value is a number.
    """
    rows: dict[int, dict[str, Any]] = {}
    with sqlite3.connect(Path(path) / "metrics.sqlite") as db:
        for rnd, name, value in db.execute("SELECT round, name, value FROM rounds ORDER BY round"):
            rows.setdefault(rnd, {"round": rnd})[name] = value
        has_texts = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'texts'").fetchone()
        if text and has_texts:
            for rnd, name, value in db.execute("SELECT round, name, value FROM texts ORDER BY round"):
                rows.setdefault(rnd, {"round": rnd})[name] = value
    return [rows[r] for r in sorted(rows)]
