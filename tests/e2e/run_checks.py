"""What every run directory holds, whether ``fedloom run`` or ``fedloom server`` wrote it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from safetensors.numpy import load_file


def check_run_dir(out: Path, rounds: int) -> dict[str, Any]:
    """Assert the run-directory contract for a completed run of ``rounds`` rounds; returns the summary."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert set(summary) >= {"status", "final", "history", "config", "wall_s", "bytes"}
    assert set(summary["final"]) == {"accuracy", "loss"} and 0 <= summary["final"]["accuracy"] <= 1
    assert [h["round"] for h in summary["history"]] == list(range(1, rounds + 1))  # every round exactly once
    assert all({"accuracy", "loss", "wall_s", "bytes_up", "fit_clients"} <= set(h) for h in summary["history"])
    with sqlite3.connect(out / "metrics.sqlite") as db:
        acc = db.execute("SELECT round, value FROM rounds WHERE name = 'accuracy' ORDER BY round").fetchall()
        per_round = db.execute("SELECT round, COUNT(*) FROM rounds GROUP BY round ORDER BY round").fetchall()
    assert [r for r, _ in acc] == list(range(1, rounds + 1)) and acc[-1][1] == summary["final"]["accuracy"]
    assert [r for r, _ in per_round] == list(range(1, rounds + 1))
    model = load_file(str(out / "model.safetensors"))
    assert model and all(v.size for v in model.values())
    for name in ("accuracy.png", "loss.png", "bytes.png", "report.html", "config.toml"):
        assert (out / name).stat().st_size > 0, name
    return summary
