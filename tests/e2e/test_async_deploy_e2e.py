"""`[server] mode = "async"` end to end over gRPC: the deployment's own server (`run_server`, TLS, client
certificates) and four deployment clients (`run_client`), in threads of this process so that no
process has to import torch again. One client is deliberately slow (e2e_clients:slow_client). The
server runs FedBuff and finishes its server updates while the slow client's stale updates are
dropped (max_staleness) instead of holding every round up, as a synchronous server would."""

from __future__ import annotations

import threading

import pytest
from test_deploy_e2e import EXPERIMENT, free_port

from fedloom.net import create_credentials, load_deployment
from fedloom.net.deploy import run_client, run_server

pytestmark = pytest.mark.slow

SLOW_S = 1.0
PACE_S = 0.1
UPDATES = 24


def test_async_server_finishes_while_the_slow_clients_updates_are_dropped(tmp_path, monkeypatch):
    creds = create_credentials(tmp_path / "creds", clients=["0", "1", "2", "3"], hosts=["127.0.0.1"])
    config = tmp_path / "deploy.toml"
    port = free_port()
    config.write_text(EXPERIMENT.format(
        rounds=UPDATES, port=port, creds=creds, run=tmp_path / "run", client_extra="",
        server_extra=('mode = "async"\n\n[asynchrony]\nbuffer_size = 2\nconcurrency = 4\nmax_staleness = 2\n'
                      'staleness = "constant"')))
    monkeypatch.setenv("FEDLOOM_E2E_CONFIG", str(config))
    monkeypatch.setenv("FEDLOOM_E2E_SLOW_S", str(SLOW_S))
    # the fast clients take at least PACE_S a task: 24 updates of 2 last >= 1.6 s whatever this machine's speed,
    # so the slow client's first update (>= 1 s) arrives while the run is on, many versions late
    monkeypatch.setenv("FEDLOOM_E2E_PACE_S", str(PACE_S))
    cfg, scfg, ccfg = load_deployment(config)
    assert cfg.asynchrony.mode == "async"  # [server] mode reaches the experiment (and its rules)
    results: dict = {}
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            results["server"] = run_server(cfg, scfg)
        except BaseException as exc:
            errors.append(exc)

    def client(name: str) -> None:
        own = cfg.replace(client_fn="e2e_clients:slow_client" if name == "3" else "e2e_clients:paced_client")
        try:
            run_client(own, ccfg, server=f"127.0.0.1:{port}", name=name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=serve, daemon=True)]
    threads += [threading.Thread(target=client, args=(n,), daemon=True) for n in ("0", "1", "2", "3")]
    for t in threads:
        t.start()
    threads[0].join(120)
    assert not threads[0].is_alive() and not errors, errors
    history = [h.metrics for h in results["server"].history]
    assert len(history) == UPDATES
    assert all(h["staleness_max"] <= 2 for h in history)
    assert history[-1]["client_updates"] == 2 * UPDATES
    assert history[-1]["dropped_stale"] >= 1  # the slow client's update came back too many versions late
    # the server never waited for the slow client: its updates together took less than the slow task's
    # time per synchronous round would
    assert sum(h["wall_s"] for h in history) < UPDATES * SLOW_S / 2, [h["wall_s"] for h in history]
    for t in threads[1:]:
        t.join(30)
