"""Live status of a real deployment: `fedloom status`, the status page in headless Chromium, and the
server's MLflow/TensorBoard observers.

One `fedloom server` process (TLS, client certificates required, central DP, status page on) and
three clients (`hospital-a..c`, real gRPC clients in threads of this process) whose training of round R
waits until the test allows it (status_clients.py), so the test looks at the status while a round is
in flight and decides when the round counter advances.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_deploy_e2e import free_port, wait_for  # one copy of the e2e helpers

from fedloom.net import create_credentials, load_deployment
from fedloom.net.client import channel_credentials
from fedloom.net.status import query_status, reply_to_dict

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NAMES = ["hospital-a", "hospital-b", "hospital-c"]
ROUNDS = 4
TIMEOUT = 120.0

CONFIG = """
dataset = "iris"
clients = 3
rounds = {rounds}
seed = 3
progress = false
dp = "central"
noise_multiplier = 0.3
mlflow_uri = "{tmp}/mlruns"
tensorboard = "{tmp}/tb"

[server]
address = "127.0.0.1:{port}"
credentials = "{creds}"
checkpoint_dir = "{tmp}/run"
require_client_cert = true
status_port = {status_port}
round_deadline_s = 120
wait_clients_s = 120
heartbeat_s = 0.5
heartbeat_timeout_s = 30

[client]
credentials = "{creds}/clients/{{name}}"
client_fn = "status_clients:paced_client"
heartbeat_s = 0.5
server_timeout_s = 30
backoff_initial_s = 0.05
backoff_max_s = 0.5
"""


class Live:
    """The running deployment and the operator's view of it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.creds = create_credentials(tmp / "creds", clients=NAMES)
        self.port, self.status_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.config = tmp / "deploy.toml"
        self.config.write_text(CONFIG.format(rounds=ROUNDS, tmp=tmp, port=self.port, creds=self.creds,
                                             status_port=self.status_port))
        self.pace_file = tmp / "pace"
        self.pace(0)
        self.admin = self.creds / "admin"
        self.token = (self.admin / "token").read_text().strip()
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)]),
                    "OMP_NUM_THREADS": "1"}
        self.server: subprocess.Popen | None = None
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def pace(self, rounds: int) -> None:
        """Let the clients train rounds up to ``rounds``."""
        tmp = self.pace_file.with_suffix(".tmp")
        tmp.write_text(str(rounds))
        tmp.replace(self.pace_file)

    def start(self) -> None:
        log = open(self.tmp / "server.log", "wb")  # noqa: SIM115 - closed with the process
        self.server = subprocess.Popen([sys.executable, "-m", "fedloom.cli", "server", "--config", str(self.config)],
                                       cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        os.environ["FEDLOOM_E2E_CONFIG"] = str(self.config)
        os.environ["FEDLOOM_STATUS_PACE"] = str(self.pace_file)
        cfg, _, ccfg = load_deployment(self.config)
        from fedloom.net.deploy import run_client

        for name in NAMES:
            def run(name: str = name) -> None:
                try:
                    run_client(cfg, ccfg, server=self.address, name=name)
                except BaseException as exc:  # surfaced by the test
                    self.errors.append(exc)

            t = threading.Thread(target=run, daemon=True, name=f"client-{name}")
            t.start()
            self.threads.append(t)

    def status(self) -> dict:
        """The status, in-process (for waiting on conditions)."""
        creds = channel_credentials(ca_cert=self.admin / "ca.pem", client_cert=self.admin / "client.pem",
                                    client_key=self.admin / "client.key")
        return reply_to_dict(query_status(self.address, token=self.token, credentials=creds, timeout_s=5))

    def wait_status(self, cond: Callable[[dict], bool], what: str) -> dict:
        seen: dict = {}

        def check() -> bool:
            nonlocal seen
            try:
                seen = self.status()
            except Exception:
                return False
            return cond(seen)

        wait_for(check, f"{what}; last status: {seen}\nserver log:\n{self.log()[-2000:]}")
        return seen

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """The real `fedloom status` command."""
        return subprocess.run([sys.executable, "-m", "fedloom.cli", "status", "--server", self.address, *args],
                              env=self.env, capture_output=True, text=True, timeout=60)

    def log(self) -> str:
        path = self.tmp / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def finish(self) -> int:
        self.pace(10**6)
        assert self.server is not None
        try:
            rc = self.server.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server did not finish; log:\n{self.log()[-3000:]}") from None
        for t in self.threads:
            t.join(30)
        return rc

    def stop(self) -> None:
        self.pace(10**6)
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait(10)
        for key in ("FEDLOOM_E2E_CONFIG", "FEDLOOM_STATUS_PACE"):
            os.environ.pop(key, None)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    d = Live(tmp_path_factory.mktemp("status"))
    try:
        d.start()
        yield d
    finally:
        d.stop()


def test_status_command_shows_clients_round_stage_metrics_and_epsilon(live):
    # round 1 is in flight: every client holds a training task the test has not released yet
    live.wait_status(lambda s: len(s["clients"]) == 3 and s["stage"] == "training", "three training clients")
    out = live.cli("--credentials", str(live.admin))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"round 1 of {ROUNDS} (0 completed), stage: training" in text
    assert "last metrics: none yet" in text
    assert "clients: 3 connected (3 needed to start a round)" in text
    for name in NAMES:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(name))
        assert "training" in line and "s ago" in line

    live.pace(1)
    live.wait_status(lambda s: s["completed_rounds"] >= 1 and s["stage"] == "training", "round 2 in flight")
    out = live.cli("--credentials", str(live.admin))
    assert out.returncode == 0, out.stderr
    assert f"round 2 of {ROUNDS} (1 completed), stage: training" in out.stdout
    assert "last metrics (round 1): accuracy 0." in out.stdout and "bytes_up" in out.stdout
    eps = next(ln for ln in out.stdout.splitlines() if ln.startswith("epsilon spent: "))
    assert float(eps.split(": ")[1]) > 0

    as_json = json.loads(live.cli("--credentials", str(live.admin), "--json").stdout)
    assert [c["name"] for c in as_json["clients"]] == NAMES
    assert all(c["last_heartbeat_s"] < 10 for c in as_json["clients"])
    assert as_json["history"][0]["round"] == 1 and as_json["epsilon"] > 0


def test_status_refuses_missing_wrong_and_client_tokens(live):
    admin = live.admin
    mtls = ["--ca-cert", str(admin / "ca.pem"), "--cert", str(admin / "client.pem"), "--key", str(admin / "client.key")]
    none = live.cli(*mtls)
    assert none.returncode == 2
    assert "refused the status request: missing admin token" in none.stderr

    wrong = live.tmp / "wrong.token"
    wrong.write_text("not-the-admin-token")
    bad = live.cli(*mtls, "--token-file", str(wrong))
    assert bad.returncode == 2 and "wrong admin token" in bad.stderr

    # a client's whole credentials folder (its token, its certificate): a client is not an admin
    client = live.cli("--credentials", str(live.creds / "clients" / "hospital-a"))
    assert client.returncode == 2
    assert "wrong admin token (a client's token is not an admin token)" in client.stderr
    assert live.cli("--credentials", str(admin)).returncode == 0  # the server still answers the admin


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium on PATH (make install installs Debian's chromium)")
    raise AssertionError  # unreachable


def test_status_page_in_headless_chromium(live):
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    chromium = _chromium()
    url = f"https://127.0.0.1:{live.status_port}/"
    with pytest.raises(OSError):  # HTTPS with the deployment's certificate, not plaintext
        urllib.request.urlopen(url.replace("https", "http"), timeout=5)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(ignore_https_errors=True)  # the deployment's own CA
            page = context.new_page()
            refused = page.goto(url)
            assert refused is not None and refused.status == 401
            assert "refused: this status page needs the admin token" in page.inner_text("body")
            client_token = (live.creds / "clients" / "hospital-a" / "token").read_text().strip()
            wrong = page.goto(url + "?token=" + client_token)
            assert wrong is not None and wrong.status == 401 and "wrong admin token" in page.inner_text("body")

            page.goto(url + "?token=" + live.token)
            assert "token=" not in page.url  # the token left the address bar (a session cookie holds access)
            # polled from here: the page's Content-Security-Policy forbids the eval behind wait_for_function
            wait_for(lambda: page.locator("#clients tbody tr").count() == 3, "the client table")
            names = page.locator("#clients tbody tr td:first-child").all_text_contents()
            assert names == NAMES
            start = int(page.inner_text("#round"))
            assert page.inner_text("#rounds") == str(ROUNDS)
            assert start < ROUNDS

            live.pace(start + 1)  # the page advances by itself: no reload
            wait_for(lambda: int(page.inner_text("#round")) > start, "the round counter to advance")
            wait_for(lambda: page.locator("#accuracy-chart circle").count() >= 2, "two points of the curve")
            assert page.inner_text("#epsilon") not in ("-", "n/a")
            stages = page.locator("#clients tbody tr td:nth-child(2)").all_text_contents()
            assert set(stages) <= {"training", "evaluating", "idle"} and len(stages) == 3
            page.screenshot(path=str(live.tmp / "status-page.png"))
        finally:
            browser.close()


def test_server_logs_config_rounds_epsilon_bytes_and_model_to_mlflow_and_tensorboard(live, monkeypatch):
    assert live.finish() == 0, live.log()[-3000:]
    assert not live.errors, live.errors
    run_dir = live.tmp / "run"

    import mlflow
    from safetensors.numpy import load_file

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads a ./mlruns file store only so

    client = mlflow.MlflowClient(tracking_uri=(live.tmp / "mlruns").as_uri())
    exp = client.get_experiment_by_name("fedloom")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["dataset"] == "iris" and run.data.params["rounds"] == str(ROUNDS)
    for key in ("accuracy", "loss", "epsilon", "bytes_up", "bytes_down"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == list(range(1, ROUNDS + 1)), key
    history = json.loads((run_dir / "history.json").read_text())
    assert [m.value for m in client.get_metric_history(run.info.run_id, "accuracy")] == [
        h["accuracy"] for h in history]
    local = client.download_artifacts(run.info.run_id, "model.safetensors", str(live.tmp))
    want, got = load_file(run_dir / "model.safetensors"), load_file(local)
    assert want.keys() == got.keys() and all((want[k] == got[k]).all() for k in want)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(live.tmp / "tb" / "run"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("epsilon")] == list(range(1, ROUNDS + 1))
    assert [e.value for e in acc.Scalars("bytes_up")] == pytest.approx([h["bytes_up"] for h in history])
    assert b"dataset = \"iris\"" in acc.Tensors("config")[0].tensor_proto.string_val[0]
