"""Named sites with one shared deploy.toml, as docs/deployment.md shows it (issue 11).

Every process is the real CLI (`fedloom certs`, `fedloom server`, `fedloom client`, `fedloom run`,
`fedloom report`) on 127.0.0.1 with a free port, TLS + mTLS + tokens.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from run_checks import check_run_dir
from safetensors.numpy import load_file
from test_deploy_e2e import TIMEOUT, free_port, wait_for

from fedloom.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SITES = ["hospital-a", "hospital-b", "hospital-c"]

DEPLOY = """
dataset = "{dataset}"
target_column = "diagnosis"
labels = ["benign", "malignant"]
clients = 3
rounds = {rounds}
hidden = 16
partition = "iid"
seed = 3
progress = false

[server]
address = "127.0.0.1:{port}"
credentials = "creds"
require_client_cert = true
min_clients_aggregate = {min_aggregate}
round_deadline_s = 30
wait_clients_s = 60
heartbeat_s = 1.0
heartbeat_timeout_s = 10.0
checkpoint_dir = "run"

[client]
credentials = "creds/clients/{{name}}"
threads = 1
heartbeat_s = 1.0
server_timeout_s = 10.0
backoff_initial_s = 0.1
backoff_max_s = 0.5
{client_extra}

[client.partitions]
hospital-a = 0
hospital-b = 1
hospital-c = 2
"""


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    names = np.array(["malignant", "benign"])[y]  # breast_cancer: 0 = malignant, 1 = benign
    rows = [",".join([*(f"f{i}" for i in range(x.shape[1])), "diagnosis"])]
    rows += [",".join([*(f"{v:.6g}" for v in xi), label]) for xi, label in zip(x, names, strict=True)]
    path.write_text("\n".join(rows) + "\n")


class Sites:
    """A working directory with data, credentials (`fedloom certs`) and one shared deploy.toml."""

    def __init__(self, tmp: Path, *, rounds: int, min_aggregate: int = 1, client_extra: str = "") -> None:
        from sklearn.datasets import load_breast_cancer

        self.tmp, self.port, self.procs = tmp, free_port(), []
        x, y = load_breast_cancer(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(y))
        write_csv(tmp / "server.csv", x[order[:300]], y[order[:300]])  # the server's data (demo partitions)
        write_csv(tmp / "hospital-a.csv", x[order[300:430]], y[order[300:430]])  # two sites' own files
        write_csv(tmp / "hospital-b.csv", x[order[430:]], y[order[430:]])
        self.config = tmp / "deploy.toml"
        self.config.write_text(DEPLOY.format(dataset=tmp / "server.csv", rounds=rounds, port=self.port,
                                             min_aggregate=min_aggregate, client_extra=client_extra))
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)]),
                    "OMP_NUM_THREADS": "1", "FEDLOOM_E2E_CONFIG": str(self.config), "FEDLOOM_E2E_SLOW_S": "0.4"}
        self.run_dir = tmp / "run"

    def fedloom(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fedloom", *args], cwd=self.tmp, env=self.env,
                              capture_output=True, text=True, timeout=TIMEOUT)

    def spawn(self, args: list[str], log: str, gate: Path | None = None) -> subprocess.Popen:
        launcher = ["e2e_launch", str(gate)] if gate else ["fedloom"]
        out = open(self.tmp / log, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", *launcher, *args], cwd=self.tmp, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT)
        proc.log = self.tmp / log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def server(self, *extra: str, gate: Path | None = None) -> subprocess.Popen:
        return self.spawn(["server", "--config", "deploy.toml", *extra], "server.log", gate)

    def client(self, name: str, *extra: str) -> subprocess.Popen:
        return self.spawn(["client", "--server", f"127.0.0.1:{self.port}", "--config", "deploy.toml",
                           "--name", name, *extra], f"{name}.log")

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""

    def finish(self, proc: subprocess.Popen) -> int:
        try:
            return proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process did not finish; log:\n{proc.log.read_text()[-3000:]}") from None

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def sites(tmp_path):
    made: list[Sites] = []

    def make(**kwargs) -> Sites:
        s = Sites(tmp_path, **kwargs)
        made.append(s)
        proc = s.fedloom("certs", "--out", "creds", "--clients", ",".join(SITES))
        assert proc.returncode == 0, proc.stderr
        return s

    yield make
    for s in made:
        s.stop()


def test_three_named_sites_two_on_their_own_csv_leave_a_run_directory_like_a_simulation(sites):
    s = sites(rounds=3)
    server = s.server()
    clients = [s.client("hospital-a", "--data", "hospital-a.csv", "--target-column", "diagnosis"),
               s.client("hospital-b", "--data", str(s.tmp / "hospital-b.csv")),  # target_column of the config
               s.client("hospital-c")]  # demo mode: partition 2 of server.csv, from [client.partitions]
    assert s.finish(server) == 0, s.log("server.log")
    for c in clients:
        assert s.finish(c) == 0, c.log.read_text()
    assert "hospital-a trains on its own data hospital-a.csv: 130 examples, 30 features, 2 classes " \
           "['benign', 'malignant']" in s.log("hospital-a.log")
    assert "client hospital-c trains on partition 2 of" in s.log("hospital-c.log")

    summary = check_run_dir(s.run_dir, rounds=3)  # the checks a simulation's directory passes (below)
    assert all(h["fit_clients"] == 3 and h["fit_failures"] == 0 for h in summary["history"])
    assert summary["final"]["accuracy"] > 0.8
    assert summary["participation"] == {name: {"fit_rounds": [1, 2, 3], "evaluate_rounds": [], "failures": []}
                                        for name in SITES}
    assert summary["labels"] == {"0": "benign", "1": "malignant"}
    assert json.loads((s.run_dir / "labels.json").read_text())["labels"] == {"0": "benign", "1": "malignant"}
    with sqlite3.connect(s.run_dir / "metrics.sqlite") as db:
        waits = db.execute("SELECT round, value FROM rounds WHERE name = 'wait_s' ORDER BY round").fetchall()
        walls = dict(db.execute("SELECT round, value FROM rounds WHERE name = 'wall_s'").fetchall())
    assert [r for r, _ in waits] == [1, 2, 3]
    assert waits[0][1] > 0.0 and walls[1] >= 0.0  # round 1 waited for the three sites; the wait is not wall_s

    report = s.fedloom("report", "run")
    assert report.returncode == 0, report.stderr
    assert "report:" in report.stdout and "fedloom run summary" in report.stdout and "FAILED" not in report.stderr

    # the same deploy.toml simulated: [server]/[client] ignored with one line; the same directory checks
    sim = s.fedloom("run", "--config", "deploy.toml", "--out", "sim")
    assert sim.returncode == 0, sim.stderr
    assert "ignoring the deployment-only [server] and [client] tables" in sim.stderr
    check_run_dir(s.tmp / "sim", rounds=3)


def test_client_and_server_killed_mid_run_resume_with_every_round_once_and_equal_the_simulation(sites):
    """SIGKILL a site and then the server in round 2; the server restarts with --resume and the site
    rejoins. Every round is in the run directory exactly once, and since the named sites hold
    partitions 0..2 ([client.partitions]) the model equals `fedloom run` on the same file bit for bit."""
    s = sites(rounds=4, min_aggregate=3, client_extra='client_fn = "site_clients:slow_site"')
    server = s.server()
    clients = {name: s.client(name) for name in SITES}
    gate = s.tmp / "server-killed"
    resumed = s.server("--resume", gate=gate)  # imports now; runs the real CLI once the gate opens
    ckpt = s.run_dir / "checkpoint.safetensors"
    wait_for(lambda: ckpt.exists() and load_checkpoint(ckpt)[0].round >= 1, "the round 1 checkpoint")
    clients["hospital-b"].send_signal(signal.SIGKILL)  # round 2 in flight: it cannot complete without b
    clients["hospital-b"].wait(10)
    server.send_signal(signal.SIGKILL)
    server.wait(10)
    killed_after = load_checkpoint(ckpt)[0].round
    gate.touch()
    rejoined = s.client("hospital-b")
    assert s.finish(resumed) == 0, s.log("server.log")
    for c in (clients["hospital-a"], clients["hospital-c"], rejoined):
        assert s.finish(c) == 0, c.log.read_text()
    assert 1 <= killed_after < 4 and f"resuming after round {killed_after}" in s.log("server.log")

    summary = check_run_dir(s.run_dir, rounds=4)  # every round exactly once: summary, metrics.sqlite
    history = json.loads((s.run_dir / "history.json").read_text())
    assert [h["round"] for h in history] == [1, 2, 3, 4]
    with sqlite3.connect(s.run_dir / "metrics.sqlite") as db:
        dup = db.execute("SELECT round, client, task, COUNT(*) FROM participation GROUP BY round, client, task "
                         "HAVING COUNT(*) > 1").fetchall()
        trained = db.execute("SELECT DISTINCT round FROM participation WHERE status = 'ok' ORDER BY round"
                             ).fetchall()
    assert dup == [] and [r for (r,) in trained if r > killed_after] == list(range(killed_after + 1, 5))
    assert all(h["fit_clients"] == 3 for h in summary["history"])

    sim = s.fedloom("run", "--config", "deploy.toml", "--out", "sim")
    assert sim.returncode == 0, sim.stderr
    deployed = load_file(str(s.run_dir / "model.safetensors"))
    simulated = load_file(str(s.tmp / "sim" / "model.safetensors"))
    assert deployed.keys() == simulated.keys()
    for name in deployed:
        np.testing.assert_array_equal(deployed[name], simulated[name])
    sim_history = json.loads((s.tmp / "sim" / "summary.json").read_text())["history"]
    assert [h["accuracy"] for h in sim_history] == [h["accuracy"] for h in summary["history"]]
