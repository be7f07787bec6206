"""Multi-process deployment: a `fedloom server` and `fedloom client` processes on 127.0.0.1.

Every test starts and stops its own processes on free ports, waits on conditions (log lines,
checkpoint rounds, process exits) with timeouts, never on bare sleeps.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from fedloom.engine.checkpoint import load_checkpoint
from fedloom.net import AuthError, create_credentials, load_deployment
from fedloom.simulation import run_simulation

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TIMEOUT = 180.0  # generous: CI machines are shared; conditions usually hold within seconds

EXPERIMENT = """
dataset = "digits"
clients = 4
rounds = {rounds}
hidden = 32
partition = "iid"
seed = 7
progress = false

[server]
address = "127.0.0.1:{port}"
credentials = "{creds}"
checkpoint_dir = "{run}"
allowed_clients = ["0", "1", "2", "3"]
require_client_cert = true
round_deadline_s = 30
wait_clients_s = 60
heartbeat_s = 1.0
heartbeat_timeout_s = 10.0
{server_extra}

[client]
credentials = "{creds}/clients/{{name}}"
threads = 1
heartbeat_s = 1.0
server_timeout_s = 10.0
backoff_initial_s = 0.1
backoff_max_s = 0.5
{client_extra}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Deployment:
    """Credentials, config files and the processes of one deployment, cleaned up at the end."""

    def __init__(self, tmp: Path, creds: Path, *, rounds: int, server_extra: str = "", client_extra: str = ""):
        self.tmp, self.port = tmp, free_port()
        self.run_dir = tmp / "run"
        self.config = tmp / "deploy.toml"
        self.config.write_text(EXPERIMENT.format(rounds=rounds, port=self.port, creds=creds, run=self.run_dir,
                                                 server_extra=server_extra, client_extra=client_extra))
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)]),
                    "OMP_NUM_THREADS": "1", "FEDLOOM_E2E_CONFIG": str(self.config)}

    def _spawn(self, args: list[str], log: str, config: Path | None = None, gate: Path | None = None
               ) -> subprocess.Popen:
        out = open(self.tmp / log, "ab")  # noqa: SIM115 - closed with the process
        launcher = ["e2e_launch", str(gate)] if gate else ["fedloom.cli"]
        proc = subprocess.Popen([sys.executable, "-m", *launcher, *args, "--config", str(config or self.config)],
                                cwd=self.tmp, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        proc.log = self.tmp / log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def server(self, *extra: str, gate: Path | None = None) -> subprocess.Popen:
        return self._spawn(["server", *extra], "server.log", gate=gate)

    def client(self, name: str, *, config: Path | None = None) -> subprocess.Popen:
        return self._spawn(["client", "--server", f"127.0.0.1:{self.port}", "--name", name], f"client{name}.log",
                           config)

    def client_config(self, client_fn: str) -> Path:
        path = self.tmp / f"{client_fn.split(':')[1]}.toml"
        path.write_text(self.config.read_text().replace("threads = 1", f'threads = 1\nclient_fn = "{client_fn}"'))
        return path

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""

    def checkpoint_round(self) -> int:
        path = self.run_dir / "checkpoint.safetensors"
        return load_checkpoint(path)[0].round if path.exists() else 0

    def finish(self, proc: subprocess.Popen, timeout: float = TIMEOUT) -> int:
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process did not finish; log:\n{proc.log.read_text()[-3000:]}") from None

    def result(self):
        state, extra = load_checkpoint(self.run_dir / "checkpoint.safetensors")
        return state, extra["history"]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture(scope="module")
def creds(tmp_path_factory) -> Path:
    return create_credentials(tmp_path_factory.mktemp("creds"), clients=["0", "1", "2", "3", "mallory"])


@functools.cache
def simulate_same(config: Path):
    """The in-process simulation of the deployment's experiment (one torch thread, like the clients)."""
    import torch

    cfg, _, _ = load_deployment(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_simulation(cfg)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, creds):
    """1 server + 4 clients (TLS, mTLS + tokens), 3 rounds; the server is SIGKILLed mid-run and resumed."""
    d = Deployment(tmp_path_factory.mktemp("resumed"), creds, rounds=3,
                   client_extra='client_fn = "e2e_clients:slow_client"')
    try:
        server = d.server()
        clients = [d.client(str(i)) for i in range(4)]
        gate = d.tmp / "server-killed"
        resumed = d.server("--resume", gate=gate)  # imports now, runs the real CLI once the gate opens
        # the round's observers (epsilon, the ledger, the log line) run after its checkpoint: wait for both
        wait_for(lambda: d.checkpoint_round() >= 1 and "round 1 done" in d.log("server.log"),
                 "the round 1 checkpoint and its log line")
        server.send_signal(signal.SIGKILL)  # mid-run: round 2 is in flight (clients sleep before training)
        server.wait(10)
        killed_after = d.checkpoint_round()
        first_log = d.log("server.log")
        gate.touch()
        assert d.finish(resumed) == 0, d.log("server.log")
        for c in clients:
            assert d.finish(c) == 0, c.log.read_text()
        state, history = d.result()
        return d, state, history, killed_after, first_log
    finally:
        d.stop()


def test_four_tls_clients_complete_three_rounds_like_the_simulation(resumed):
    d, state, history, _, _ = resumed
    assert [h["round"] for h in history] == [1, 2, 3]
    assert all(h["metrics"]["fit_clients"] == 4 and h["metrics"]["fit_failures"] == 0 for h in history)
    sim = simulate_same(d.config)
    assert abs(history[-1]["metrics"]["accuracy"] - sim.final["accuracy"]) <= 0.01
    assert history[-1]["metrics"]["accuracy"] > 0.5
    assert "client 0 connected" in d.log("server.log")


def test_server_killed_and_resumed_equals_an_uninterrupted_run(resumed):
    d, state, history, killed_after, first_log = resumed
    assert 1 <= killed_after < 3  # killed mid-run
    assert f"round {killed_after} done" in first_log and "round 3 done" not in first_log
    assert f"resuming after round {killed_after}" in d.log("server.log")
    assert [h["round"] for h in history] == [1, 2, 3]  # none lost, none repeated
    sim = simulate_same(d.config)  # the uninterrupted run with the same seed
    for name in sim.parameters:
        np.testing.assert_array_equal(state.parameters[name], sim.parameters[name])


@pytest.fixture(scope="module")
def faults(tmp_path_factory, creds):
    """Clients 0, 1 honest; 2 misbehaves every round; 3 is SIGKILLed mid-round 1 and restarted;
    mallory holds valid credentials but is not on the allow list."""
    d = Deployment(tmp_path_factory.mktemp("faults"), creds, rounds=5,
                   server_extra="min_clients_aggregate = 2\nmax_message_mb = 0.1")
    gate = d.tmp / "victim-killed"
    d.env["FEDLOOM_E2E_GATE"] = str(gate)
    try:
        server = d.server()
        clients = [d.client("0"), d.client("1"), d.client("2", config=d.client_config("e2e_clients:bad_client"))]
        victim = d.client("3", config=d.client_config("e2e_clients:slow_client"))
        # the restarted victim: starts now, connects only after the kill (see e2e_clients.gated_client)
        replacement = d._spawn(["client", "--server", f"127.0.0.1:{d.port}", "--name", "3"], "client3-restarted.log",
                               d.client_config("e2e_clients:gated_client"))
        intruder = mallory(d, creds)
        wait_for(lambda: "fit round 1 started" in d.log("client3.log"), "the victim to start round 1")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        gate.touch()
        clients.append(replacement)
        assert d.finish(server) == 0, d.log("server.log")
        for c in clients:
            assert d.finish(c) == 0, c.log.read_text()
        intruder.join(TIMEOUT)
        return d, d.result()[1], intruder.error
    finally:
        d.stop()


def mallory(d: Deployment, creds: Path):
    """A client with a valid certificate and token that is not on the allow list (in a thread)."""
    import threading

    from e2e_clients import Echo

    from fedloom.net import ClientRuntime, channel_credentials

    cdir = creds / "clients" / "mallory"
    rt = ClientRuntime(Echo(), server=f"127.0.0.1:{d.port}", token=(cdir / "token").read_text(),
                       credentials=channel_credentials(ca_cert=cdir / "ca.pem", client_cert=cdir / "client.pem",
                                                       client_key=cdir / "client.key"),
                       backoff_initial_s=0.1, backoff_max_s=0.5, give_up_after_s=TIMEOUT)

    class Attempt(threading.Thread):
        error: BaseException | None = None

        def run(self) -> None:
            try:
                rt.run()
            except BaseException as exc:
                self.error = exc

    attempt = Attempt(daemon=True)
    attempt.start()
    return attempt


def test_client_killed_mid_round_round_completes_and_client_rejoins(faults):
    d, history, _ = faults
    assert [h["round"] for h in history] == [1, 2, 3, 4, 5]
    # round 1: 0 and 1 count; 2 (bad) and 3 (killed) fail
    assert history[0]["metrics"]["fit_clients"] == 2 and history[0]["metrics"]["fit_failures"] == 2
    assert "fit round 2 started" in d.log("client3-restarted.log")
    # later rounds: the restarted 3 is back
    for h in history[1:]:
        assert h["metrics"]["fit_clients"] == 3 and h["metrics"]["fit_failures"] == 1
    assert "client 3 failed: client disconnected" in d.log("server.log")


def test_bad_updates_are_rejected_with_a_logged_reason(faults):
    d, history, _ = faults
    log = d.log("server.log")
    nonfinite = [ln for ln in log.splitlines() if "rejected update from client 2" in ln and "NaN or infinite" in ln]
    assert len(nonfinite) == 2  # rounds 1 (NaN) and 5 (inf)
    assert re.search(r"client 2: rejected message: '.+': shape \(\d+,\) != expected", log)  # round 2
    assert "client 2: rejected message: update has wrong names" in log  # round 3
    assert "client 2: rejected oversized message" in log  # round 4
    assert len(history) == 5  # the server kept serving


def test_client_not_on_the_allow_list_is_refused(faults):
    d, _, error = faults
    assert isinstance(error, AuthError) and error.code == grpc.StatusCode.PERMISSION_DENIED
    assert "not allowed to join" in str(error)
    assert "refused a connection" in d.log("server.log") and "'mallory' is not allowed" in d.log("server.log")


def test_secagg_over_grpc_survives_a_client_killed_after_share_keys(tmp_path):
    """SecAgg+ over the real transport: 5 client processes, client 4 SIGKILLs itself when the masked-input
    stage arrives (after sharing its keys); the unmask stage recovers and the round completes; the same
    identity rejoins for round 2."""
    creds = create_credentials(tmp_path / "creds", clients=["0", "1", "2", "3", "4"])
    d = Deployment(tmp_path, creds, rounds=2)
    d.config.write_text(
        d.config.read_text()
        .replace("clients = 4", "clients = 5\nsecagg = true\nsecagg_neighbours = -1\nsecagg_threshold = 3")
        .replace('allowed_clients = ["0", "1", "2", "3"]', 'allowed_clients = ["0", "1", "2", "3", "4"]')
    )
    try:
        server = d.server()
        clients = [d.client(str(i)) for i in range(4)]
        doomed = d.client("4", config=d.client_config("e2e_clients:dies_after_share_keys"))
        wait_for(lambda: doomed.poll() is not None, "client 4 to die at the masked-input stage")
        assert doomed.returncode == -signal.SIGKILL
        wait_for(lambda: d.checkpoint_round() >= 1, "round 1 to complete without client 4", timeout=60)
        rejoined = d.client("4")
        assert d.finish(server) == 0, d.log("server.log")
        for c in [*clients, rejoined]:
            assert d.finish(c) == 0, c.log.read_text()
        _, history = d.result()
        assert [h["round"] for h in history] == [1, 2]
        assert history[-1]["metrics"]["accuracy"] > 0.5
    finally:
        d.stop()


def test_he_server_process_runs_without_the_secret_key(tmp_path, creds):
    """Issue 10, finding 3, with processes: `fedloom server` gets a key directory with public.tenseal
    only, the four `fedloom client` processes one with secret.tenseal only; the run completes and the
    clients evaluate the model they decrypted (the server has none)."""
    import shutil

    from fedloom.privacy.he import write_keys

    write_keys(tmp_path / "keys", poly_degree=4096, scale_bits=30)
    server_keys, client_keys = tmp_path / "server-keys", tmp_path / "client-keys"
    server_keys.mkdir()
    client_keys.mkdir()
    shutil.copy(tmp_path / "keys" / "public.tenseal", server_keys)
    shutil.copy(tmp_path / "keys" / "secret.tenseal", client_keys)
    d = Deployment(tmp_path, creds, rounds=2)
    he = 'he = true\nhe_poly_degree = 4096\nhe_scale = 30\nfraction_evaluate = 1.0\nhe_keys = "{}"'
    text = d.config.read_text()
    d.config.write_text(text.replace("seed = 7", f"seed = 7\n{he.format(server_keys)}"))
    client_config = tmp_path / "client.toml"
    client_config.write_text(text.replace("seed = 7", f"seed = 7\n{he.format(client_keys)}"))
    try:
        server = d.server()
        clients = [d.client(str(i), config=client_config) for i in range(4)]
        assert d.finish(server) == 0, d.log("server.log")
        for c in clients:
            assert d.finish(c) == 0, c.log.read_text()
        state, history = d.result()
        assert [h["round"] for h in history] == [1, 2]
        assert all(h["metrics"]["fit_clients"] == 4 and h["metrics"]["fit_failures"] == 0 for h in history)
        assert history[-1]["metrics"]["fed_accuracy"] > 0.5  # the clients decrypted the server's aggregate
        assert "accuracy" not in history[-1]["metrics"] and state.parameters.names == []  # the server has no model
        log = d.log("server.log")
        assert "holds the public CKKS context only" in log and "on the server's machine" not in log
    finally:
        d.stop()
