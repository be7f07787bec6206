"""How each client fares: summary.json's clients block, the metrics.sqlite table, the box plot and report."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.engine import RoundRecord, RunResult
from fedloom.runs.clients import clients_block, distribution
from fedloom.runs.plots import write_client_plots, write_html_report
from fedloom.runs.store import RunStore


def _record(rnd: int, accs: list[float]) -> RoundRecord:
    clients = {str(i): {"loss": 1.0 - a, "num_examples": 10.0 + i, "accuracy": a,
                        "personal_accuracy": min(1.0, a + 0.1)} for i, a in enumerate(accs)}
    return RoundRecord(rnd, {"fed_accuracy": float(np.mean(accs))}, clients=clients)


def test_distribution_reports_the_low_tail_of_accuracy_and_the_high_tail_of_loss() -> None:
    accs = [0.1 * i for i in range(11)]  # 0.0 .. 1.0
    d = distribution(accs, higher_is_better=True)
    assert (d["worst"], d["best"], d["median"]) == (0.0, 1.0, pytest.approx(0.5))
    assert d["p10"] == pytest.approx(0.1) and d["std"] == pytest.approx(float(np.std(accs)))
    loss = distribution(accs, higher_is_better=False)
    assert (loss["worst"], loss["p10"]) == (1.0, pytest.approx(0.9))


def test_summary_sqlite_plot_and_report(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    history = [_record(1, [0.2, 0.5, 0.9]), RoundRecord(2, {"loss": 0.3}), _record(3, [0.4, 0.6, 0.95, 0.3])]
    for rec in history:
        store.on_round_end(rec, ServerState(Parameters()))
    summary = store.write_summary(RunResult(ServerState(Parameters()), history), {}, 1.0)
    block = json.loads((tmp_path / "summary.json").read_text())["clients"]
    assert block == summary["clients"] and block["round"] == 3 and block["count"] == 4
    assert block["metrics"]["accuracy"]["worst"] == 0.3 and block["metrics"]["loss"]["worst"] == pytest.approx(0.7)
    assert block["metrics"]["accuracy"]["mean"] == pytest.approx(np.mean([0.4, 0.6, 0.95, 0.3]))
    assert set(block["per_client"]) == {"0", "1", "2", "3"} and "num_examples" not in block["metrics"]
    with sqlite3.connect(tmp_path / "metrics.sqlite") as db:
        rows = db.execute("SELECT round, client, value FROM clients WHERE name = 'accuracy' ORDER BY round, client")
        assert rows.fetchall() == [(1, "0", 0.2), (1, "1", 0.5), (1, "2", 0.9),
                                   (3, "0", 0.4), (3, "1", 0.6), (3, "2", 0.95), (3, "3", 0.3)]
    per_round = store.read_clients()
    assert sorted(per_round) == [1, 3] and per_round[3]["3"]["accuracy"] == 0.3
    plots = write_client_plots(per_round, tmp_path)
    assert [p.name for p in plots] == ["clients_accuracy.png"] and plots[0].stat().st_size > 1000
    page = write_html_report(summary, plots, tmp_path).read_text()
    assert "<h2>Clients</h2>" in page and "clients_accuracy.png" in page and "personal_accuracy" in page


def test_no_federated_evaluation_no_block_and_no_plot(tmp_path: Path) -> None:
    assert clients_block([RoundRecord(1, {"loss": 0.5})]) is None
    assert write_client_plots({}, tmp_path) == []
    store = RunStore(tmp_path)
    summary = store.write_summary(RunResult(ServerState(Parameters()), [RoundRecord(1, {"loss": 0.5})]), {}, 1.0)
    assert "clients" not in summary
