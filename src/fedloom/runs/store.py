"""The run directory: resolved config, per-round metrics (SQLite), summary, model, checkpoint.

Layout of ``runs/<name>/``::

    config.toml          the resolved configuration (re-runnable with --config)
    metrics.sqlite       table rounds(round, name, value): every metric of every round
    summary.json         {"final": {...}, "history": [...], "config": {...}, "wall_s": ...}
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
from pathlib import Path
from typing import Any

import tomli_w
from safetensors.numpy import save_file

from fedloom.core.atomic import atomic_write, atomic_write_text
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.engine import RoundRecord, RunResult

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

    def write_model(self, parameters: Parameters) -> None:
        tensors = {k: v for k, v in parameters.items()}
        atomic_write(self.path / "model.safetensors", lambda tmp: save_file(tensors, tmp), mode=0o644)

    def write_summary(self, result: RunResult, config: dict[str, Any], wall_s: float,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
        history = [h.as_dict() for h in result.history]
        final = final_metrics(result.history)
        summary: dict[str, Any] = {
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
        summary.update(extra or {})
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2))
        return summary


def final_metrics(history: list[RoundRecord]) -> dict[str, float]:
    """Final accuracy/loss: central evaluation if any, else federated, from the last evaluated round."""
    for record in reversed(history):
        m = record.metrics
        if "loss" in m:
            return {k: m[k] for k in ("accuracy", "loss") if k in m}
        if "fed_loss" in m:
            out = {"loss": m["fed_loss"]}
            if "fed_accuracy" in m:
                out["accuracy"] = m["fed_accuracy"]
            return out
    return {}


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows ``{"round": r, metric: value, ...}`` from a run's ``metrics.sqlite``."""
    rows: dict[int, dict[str, float]] = {}
    with sqlite3.connect(Path(path) / "metrics.sqlite") as db:
        for rnd, name, value in db.execute("SELECT round, name, value FROM rounds ORDER BY round"):
            rows.setdefault(rnd, {"round": rnd})[name] = value
    return [rows[r] for r in sorted(rows)]
