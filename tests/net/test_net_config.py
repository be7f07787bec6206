"""Deployment config files and the server/client entry points, in one process."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fedloom.errors import ConfigError
from fedloom.net import ServerConfig, build_pool, load_deployment, run_client, run_server
from fedloom.net.client import backoff_delay


def write(tmp_path, text):
    path = tmp_path / "deploy.toml"
    path.write_text(text)
    return path


def test_load_deployment_splits_tables_and_resolves_paths(tmp_path):
    path = write(tmp_path, """
dataset = "iris"
clients = 3
lr = 1
[server]
credentials = "creds"
round_deadline_s = 5
allowed_clients = ["a"]
[client]
credentials = "creds/clients/{name}"
""")
    run, server, client = load_deployment(path)
    assert run.dataset == "iris" and run.clients == 3 and run.lr == 1.0
    assert server.credentials == str(tmp_path / "creds") and server.round_deadline_s == 5.0
    assert server.allowed_clients == ["a"]
    assert client.credentials == str(tmp_path / "creds" / "clients" / "{name}")


@pytest.mark.parametrize(("text", "match"), [
    ("[server]\nadress = 'x:1'", "unknown key"),
    ("[server]\nround_deadline_s = 'soon'", "must be float"),
    ("[server]\nallowed_clients = 'a'", "list of strings"),
    ("[server]\nheartbeat_s = 40", "heartbeat_s"),
    ("[client]\nbackoff_initial_s = 0", "backoff"),
    ("roundz = 3", "unknown config key"),
])
def test_bad_deployment_configs_are_clear_errors(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_deployment(write(tmp_path, text))


def test_tls_is_required_unless_insecure(tmp_path):
    with pytest.raises(ConfigError, match="--insecure"):
        build_pool(ServerConfig(), min_clients=1)
    with pytest.raises(ConfigError, match="does not exist"):
        build_pool(ServerConfig(credentials=str(tmp_path / "missing")), min_clients=1)


def test_backoff_grows_exponentially_with_jitter_and_caps():
    import random

    rng = random.Random(0)
    delays = [backoff_delay(a, initial=0.5, maximum=8.0, rng=rng) for a in range(8)]
    for attempt, d in enumerate(delays):
        cap = min(8.0, 0.5 * 2**attempt)
        assert cap / 2 <= d <= cap
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered


def test_server_and_clients_in_process_match_the_simulation(tmp_path):
    from fedloom.simulation import run_simulation

    path = write(tmp_path, """
dataset = "iris"
clients = 2
rounds = 2
hidden = 8
partition = "iid"
progress = false
[server]
address = "127.0.0.1:0"
checkpoint_dir = "run"
heartbeat_s = 0.5
[client]
heartbeat_s = 0.5
""")
    cfg, scfg, ccfg = load_deployment(path)
    port: list[int] = []
    result: dict = {}
    server = threading.Thread(target=lambda: result.update(r=run_server(cfg, scfg, insecure=True,
                                                                         on_listen=port.append)))
    server.start()
    while not port:
        server.join(0.05)
    clients = [threading.Thread(target=run_client, args=(cfg, ccfg),
                                kwargs={"server": f"127.0.0.1:{port[0]}", "name": str(i), "insecure": True})
               for i in range(2)]
    for c in clients:
        c.start()
    server.join(60)
    for c in clients:
        c.join(10)
    run = result["r"]
    sim = run_simulation(cfg)
    assert [h.round for h in run.history] == [1, 2]
    for name in sim.parameters:
        np.testing.assert_allclose(run.parameters[name], sim.parameters[name], rtol=1e-6, atol=1e-7)
    assert (tmp_path / "run" / "model.safetensors").exists() and (tmp_path / "run" / "history.json").exists()
    with pytest.raises(ConfigError, match="--resume"):
        run_server(cfg, scfg, insecure=True)


def test_certs_command_writes_credentials(tmp_path, capsys):
    from fedloom.cli import main

    main(["certs", "--out", str(tmp_path / "creds"), "--clients", "a,b", "--hosts", "fl.example.org"])
    assert "2 client credentials" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "creds" / "clients").iterdir()) == ["a", "b"]
    with pytest.raises(SystemExit) as exit_info:
        main(["certs", "--out", str(tmp_path / "bad"), "--clients", "../x"])
    assert exit_info.value.code == 2
    assert "invalid client name" in capsys.readouterr().err
