"""The command line end to end, as a user runs it (in a subprocess)."""

import json
import sqlite3
import subprocess
import sys

import pytest
from safetensors.numpy import load_file


def fedloom(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fedloom", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=240)


def test_run_writes_everything(tmp_path):
    out = tmp_path / "run"
    proc = fedloom("run", "--dataset", "wine", "--clients", "3", "--rounds", "3", "--partition", "iid",
                   "--seed", "1", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "final accuracy:" in proc.stdout and "fedloom run summary" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"final", "history", "config", "wall_s"}
    assert set(summary["final"]) == {"accuracy", "loss"} and 0 <= summary["final"]["accuracy"] <= 1
    assert [h["round"] for h in summary["history"]] == [1, 2, 3]
    assert all({"accuracy", "loss", "wall_s"} <= set(h) for h in summary["history"])
    assert summary["config"]["dataset"] == "wine" and summary["config"]["seed"] == 1
    with sqlite3.connect(out / "metrics.sqlite") as db:
        rows = db.execute("SELECT round, value FROM rounds WHERE name = 'accuracy' ORDER BY round").fetchall()
    assert [r for r, _ in rows] == [1, 2, 3] and rows[-1][1] == summary["final"]["accuracy"]
    model = load_file(str(out / "model.safetensors"))
    assert model["0.weight"].shape == (128, 13)
    for name in ("accuracy.png", "loss.png", "bytes.png", "report.html", "config.toml"):
        assert (out / name).stat().st_size > 0
    # the resolved config re-runs to identical numbers
    again = tmp_path / "again"
    proc = fedloom("run", "--config", str(out / "config.toml"), "--out", str(again), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((again / "summary.json").read_text())["final"] == summary["final"]


def test_regression_summary_has_loss_only(tmp_path):
    proc = fedloom("run", "--dataset", "diabetes", "--partition", "iid", "--model", "linear", "--rounds", "2",
                   "--clients", "3", "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads((tmp_path / "summary.json").read_text())["final"]) == {"loss"}


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "cifar"], "unknown dataset 'cifar'; choose one of"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--strategy", "magic"], "unknown strategy 'magic'"),
    (["--clients", "0"], "clients must be >= 1"),
    (["--fraction", "1.5"], "fraction must be in (0, 1]"),
    (["--alpha", "0"], "alpha must be > 0"),
    (["--dataset", "iris", "--clients", "1000"], "1000 clients but only 120 training examples"),
    (["--rounds", "abc"], "'abc' is not a valid integer"),
])
def test_bad_input_is_one_clear_line(args, message):
    proc = fedloom("run", *args, "--rounds", "1", "--no-progress") if "--rounds" not in args else fedloom("run", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_toml_with_unknown_key(tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('rounds = 2\nlocal_epoch = 3\n')
    proc = fedloom("run", "--config", str(cfg))
    assert proc.returncode == 2 and "unknown config key(s) ['local_epoch']" in proc.stderr


def test_help_explains_flags():
    proc = fedloom("run", "--help")
    assert proc.returncode == 0
    for flag in ("--dataset", "--model", "--clients", "--rounds", "--fraction", "--local-epochs", "--batch-size",
                 "--lr", "--strategy", "--partition", "--alpha", "--seed", "--out", "--config"):
        assert flag in proc.stdout


def test_report_and_data_commands(tmp_path):
    proc = fedloom("run", "--dataset", "iris", "--clients", "3", "--rounds", "2", "--out", str(tmp_path),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "accuracy.png").unlink()
    proc = fedloom("report", str(tmp_path))
    assert proc.returncode == 0 and (tmp_path / "accuracy.png").exists()
    proc = fedloom("data", "--dataset", "iris", "--clients", "3", "--partition", "shards")
    assert proc.returncode == 0 and "y=2" in proc.stdout


@pytest.mark.slow
def test_default_run_reaches_090(tmp_path):
    proc = fedloom("run", "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["final"]["accuracy"] >= 0.90


@pytest.mark.slow
def test_iid_ten_clients_reaches_093(tmp_path):
    proc = fedloom("run", "--partition", "iid", "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["final"]["accuracy"] >= 0.93
