"""A TypeScript client (clients/typescript) federates beside Python clients over TLS with token authentication.

One `fedloom server`, two `fedloom client` processes and one Node.js client train fedloom's ``logistic``
model on breast_cancer; the run reaches the accuracy of the same experiment run all in Python. The
TypeScript client reads its rows as raw CSV and standardizes them with the statistics every client
shares (the client pool's mean and standard deviation, exactly what the Python clients' data loader
uses): a deployment choice, written by the test as ``scaler.json``.

Skipped when ``node`` or the built client (``npm ci && npm run build`` in clients/typescript, which
``make install`` does) is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_deploy_e2e import ROOT, Deployment, simulate_same

from fedloom.net import create_credentials, load_deployment

pytestmark = pytest.mark.slow

CLIENT_JS = ROOT / "clients" / "typescript" / "dist" / "src" / "cli.js"
NODE = shutil.which("node")

EXPERIMENT = """
dataset = "breast_cancer"
model = "logistic"
clients = 3
rounds = 4
partition = "iid"
lr = 0.05
batch_size = 16
seed = 3
progress = false

[server]
address = "127.0.0.1:{port}"
credentials = "{creds}"
checkpoint_dir = "{run}"
allowed_clients = ["0", "1", "2"]
round_deadline_s = 60
wait_clients_s = 60
heartbeat_s = 1.0
heartbeat_timeout_s = 20.0

[client]
credentials = "{creds}/clients/{{name}}"
threads = 1
heartbeat_s = 1.0
server_timeout_s = 20.0
backoff_initial_s = 0.1
backoff_max_s = 0.5
"""

needs_node = pytest.mark.skipif(NODE is None or not CLIENT_JS.exists(),
                                reason="needs node and the built TypeScript client (make install)")


def site_files(config: Path, name: str, out: Path) -> dict[str, Path]:
    """Client ``name``'s rows as raw CSV (train and local test) and the shared scaler, from the deployment's split."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    from fedloom.simulation import build_simulation

    cfg, _, _ = load_deployment(config)
    sim = build_simulation(cfg)
    split = sim.splits[int(name)]
    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    train_idx, _ = train_test_split(np.arange(len(x)), test_size=cfg.data.test_fraction, random_state=cfg.run.seed,
                                    stratify=y)
    pool_x, pool_y = x[np.sort(train_idx)], y[np.sort(train_idx)]
    mean, std = pool_x.mean(axis=0), pool_x.std(axis=0)
    std[std == 0] = 1.0
    # the rows the Python client of this name would hold, standardized as the Python clients' loader does
    np.testing.assert_allclose((pool_x[split.train] - mean) / std, sim.dataset.x_train[split.train], atol=1e-5)
    header = ",".join([*(f"f{i}" for i in range(x.shape[1])), "target"])
    files = {"train": out / "train.csv", "test": out / "test.csv", "scaler": out / "scaler.json"}
    for key, rows in (("train", split.train), ("test", split.test)):
        table = np.column_stack([pool_x[rows].astype(np.float64), pool_y[rows]])
        np.savetxt(files[key], table, delimiter=",", header=header, comments="", fmt=["%.9g"] * x.shape[1] + ["%d"])
    files["scaler"].write_text(json.dumps({"mean": mean.astype(float).tolist(), "std": std.astype(float).tolist()}))
    return files


def ts_client(d: Deployment, creds: Path, name: str, files: dict[str, Path]) -> subprocess.Popen:
    out = open(d.tmp / f"client{name}.log", "ab")  # noqa: SIM115 - closed with the process
    args = [str(NODE), str(CLIENT_JS), "--server", f"127.0.0.1:{d.port}",
            "--credentials", str(creds / "clients" / name), "--name", name,
            "--data", str(files["train"]), "--test-data", str(files["test"]), "--labels", "0,1",
            "--scaler", str(files["scaler"]), "--heartbeat", "1", "--server-timeout", "20",
            "--connect-timeout", "60", "--backoff-max", "0.5", "--save-model", str(d.tmp / "ts-model.safetensors")]
    proc = subprocess.Popen(args, cwd=d.tmp, stdout=out, stderr=subprocess.STDOUT)
    proc.log = d.tmp / f"client{name}.log"  # type: ignore[attr-defined]
    d.procs.append(proc)
    return proc


@needs_node
def test_typescript_client_federates_beside_python_clients(tmp_path):
    from safetensors.numpy import load_file

    creds = create_credentials(tmp_path / "creds", clients=["0", "1", "2"])
    d = Deployment(tmp_path, creds, rounds=4)
    d.config.write_text(EXPERIMENT.format(port=d.port, creds=creds, run=d.run_dir))
    try:
        server = d.server()
        clients = [d.client("0"), d.client("1")]
        clients.append(ts_client(d, creds, "2", site_files(d.config, "2", tmp_path)))  # while the others start
        sim = simulate_same(d.config)  # the same experiment, all three clients in Python (meanwhile)
        assert d.finish(server, timeout=120) == 0, d.log("server.log")
        for c in clients:
            assert d.finish(c, timeout=30) == 0, c.log.read_text()
        _, history = d.result()
    finally:
        d.stop()
    assert [h["round"] for h in history] == [1, 2, 3, 4]
    assert all(h["metrics"]["fit_clients"] == 3 and h["metrics"]["fit_failures"] == 0 for h in history), history
    assert "connected to 127.0.0.1" in d.log("client2.log") and "fit round 4 done" in d.log("client2.log")
    accuracy = history[-1]["metrics"]["accuracy"]
    assert accuracy > 0.9
    print(f"deployment with the TypeScript client: {accuracy:.4f}; all-Python simulation: {sim.final['accuracy']:.4f}")
    assert abs(accuracy - sim.final["accuracy"]) <= 0.01, (accuracy, sim.final["accuracy"])
    saved = load_file(str(d.tmp / "ts-model.safetensors"))  # the TS safetensors writer, read by Python
    assert set(saved) == {"weight", "bias"}
    assert saved["weight"].shape == (2, 30) and saved["weight"].dtype == np.float32
