"""The plot worker draws a run's plots in another process, and nothing is lost when it fails."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fedloom.runs import plot_worker
from fedloom.runs.plot_worker import PlotWorker

HISTORY = [{"round": r, "accuracy": 0.5 + 0.1 * r, "loss": 1.0 / r, "bytes_up": 100.0, "bytes_down": 100.0}
           for r in (1, 2, 3)]
NAMES = {"accuracy.png", "loss.png", "bytes.png", "accuracy_vs_bytes.png"}


def _pngs(paths: list[Path]) -> set[str]:
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    return {p.name for p in paths}


def test_worker_draws_every_plot(tmp_path: Path, caplog) -> None:
    worker = PlotWorker(tmp_path)
    assert worker._proc is not None  # a separate process really ran
    with caplog.at_level("INFO"):
        assert _pngs(worker.finish(HISTORY)) == NAMES
    assert "plot worker" not in caplog.text  # no fallback to drawing here


def test_a_worker_that_cannot_start_falls_back_to_this_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    worker = PlotWorker(tmp_path)
    assert worker._proc is None
    assert _pngs(worker.finish(HISTORY)) == NAMES


def test_a_crashing_worker_falls_back_to_this_process(tmp_path: Path, monkeypatch, caplog) -> None:
    worker = PlotWorker(tmp_path)
    worker._proc.kill()  # type: ignore[union-attr]  # dies before it gets the history
    worker._proc.wait()  # type: ignore[union-attr]
    with caplog.at_level("WARNING"):
        assert _pngs(worker.finish(HISTORY)) == NAMES
    assert "plot worker failed" in caplog.text


def test_cancel_stops_the_worker(tmp_path: Path) -> None:
    worker = PlotWorker(tmp_path)
    proc = worker._proc
    worker.cancel()
    assert proc is not None and proc.poll() is not None
    assert list(tmp_path.glob("*.png")) == []


@pytest.mark.parametrize("history", [[], [{"round": 1}]])
def test_histories_without_metrics_draw_nothing(tmp_path: Path, history: list) -> None:
    assert plot_worker.PlotWorker(tmp_path).finish(history) == []



def test_a_worker_draws_only_its_share_of_the_plots(tmp_path: Path) -> None:
    paths = PlotWorker(tmp_path, names=("loss", "bytes")).finish(HISTORY)
    assert _pngs(paths) == {"loss.png", "bytes.png"}
