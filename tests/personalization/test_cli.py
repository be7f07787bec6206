"""``fedloom run --personalization ...`` leaves the clients block, table and box plot; ``fedloom report`` redraws it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedloom.cli import cli


@pytest.mark.slow  # the run's plot worker is a second process
def test_run_and_report_show_how_each_client_fares(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(cli, ["run", "--dataset", "iris", "--clients", "4", "--rounds", "2", "--hidden", "8",
                              "--personalization", "fedper", "--personal-layers", "2", "--fraction-evaluate", "1",
                              "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clients"]["count"] == 4 and set(summary["clients"]["metrics"]) >= {"accuracy", "personal_accuracy"}
    with sqlite3.connect(out / "metrics.sqlite") as db:
        assert db.execute("SELECT COUNT(DISTINCT client) FROM clients WHERE round = 2").fetchone() == (4,)
    assert (out / "clients_accuracy.png").exists() and "<h2>Clients</h2>" in (out / "report.html").read_text()
    assert 'personalization = "fedper"' in (out / "config.toml").read_text()
    (out / "clients_accuracy.png").unlink()
    res = runner.invoke(cli, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "clients_accuracy.png").exists() and "clients personal_accuracy" in res.output
