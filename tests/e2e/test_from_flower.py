"""Issue 20, acceptance: Flower's quickstart, ported (examples/from_flower), runs in simulation and in
deployment with all user code loaded by ``module:factory`` from the example's folder, and both reach
the same per-round accuracy. The deployment also deploys a custom strategy
(``server_app:LoggingLrDecayFedAvg``) and a custom central evaluation (``server_app:evaluate_fn``)
through ``fedloom server`` with no server script.

Every process starts in a copy of the example folder with only fedloom's sources on PYTHONPATH: the
example's modules load because the current directory (and the config's folder) is importable.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fedloom.runs.store import read_history

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "from_flower"
TIMEOUT = 240
CLIENTS, ROUNDS = 4, 3
"""Smaller than the example's 10 clients and 5 rounds, so that the test runs in seconds on 2 cores."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def _fedloom(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fedloom.cli", *args], cwd=cwd, env=_env(),
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait(proc: subprocess.Popen, log: Path) -> None:
    try:
        code = proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"process did not finish:\n{log.read_text()[-3000:]}") from None
    assert code == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The example simulated (`fedloom run`) and deployed (`fedloom server` + `fedloom client`s), side by side."""
    work = tmp_path_factory.mktemp("from_flower")
    sim_dir, dep_dir = work / "sim", work / "deploy"
    for d in (sim_dir, dep_dir):
        shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns("__pycache__", "server_run"))
    port = _free_port()
    toml = (EXAMPLE / "fedloom.toml").read_text()
    for old, new in [("rounds = 5 ", f"rounds = {ROUNDS} "), ("clients = 10 ", f"clients = {CLIENTS} "),
                     ("min_clients_start = 10", f"min_clients_start = {CLIENTS}")]:
        assert old in toml, old
        toml = toml.replace(old, new)
    (sim_dir / "fedloom.toml").write_text(toml)
    (dep_dir / "fedloom.toml").write_text(toml.replace("127.0.0.1:9092", f"127.0.0.1:{port}"))
    procs = [(_fedloom(["run", "--config", "fedloom.toml", "--out", str(sim_dir / "run")], sim_dir,
                       work / "sim.log"), work / "sim.log"),
             (_fedloom(["server", "--config", "fedloom.toml", "--insecure"], dep_dir, work / "server.log"),
              work / "server.log")]
    # the clients start in another folder: the config file's folder makes the example importable
    procs += [(_fedloom(["client", "--config", str(dep_dir / "fedloom.toml"), "--server", f"127.0.0.1:{port}",
                         "--name", str(i), "--insecure"], work, work / f"client{i}.log"), work / f"client{i}.log")
              for i in range(CLIENTS)]
    try:
        for proc, log in procs:
            _wait(proc, log)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
    simulated = read_history(sim_dir / "run")
    deployed = json.loads((dep_dir / "server_run" / "history.json").read_text())
    return simulated, deployed, (work / "server.log").read_text()


def test_the_port_reaches_the_same_accuracy_every_round_simulated_and_deployed(both):
    simulated, deployed, _ = both
    assert [h["round"] for h in deployed] == list(range(1, ROUNDS + 1))
    for sim, dep in zip(simulated, deployed, strict=True):
        assert dep["fit_clients"] == sim["fit_clients"] == CLIENTS // 2  # fraction 0.5
        assert dep["fed_clients"] == sim["fed_clients"] == CLIENTS  # fraction_evaluate 1.0
        assert dep["accuracy"] == pytest.approx(sim["accuracy"], abs=0.01)
        assert dep["fed_accuracy"] == pytest.approx(sim["fed_accuracy"], abs=0.01)
    assert simulated[-1]["accuracy"] > 0.5  # it learns: 0.1 before training


def test_the_custom_strategy_and_central_evaluation_ran_on_the_deployed_server(both):
    _, deployed, server_log = both
    # LoggingLrDecayFedAvg decays lr by 0.9 a round and records it; evaluate_fn adds a string metric
    assert [round(h["train_lr"], 6) for h in deployed] == [round(0.01 * 0.9**i, 6) for i in range(ROUNDS)]
    assert all(isinstance(h["worst_class"], str) for h in deployed)
    assert "round 0 (initial model)" in server_log
