"""Issue 10, finding 3: a deployed HE server never holds the CKKS secret key.

The attacker here is the server itself (honest but curious): if it ever holds ``secret.tenseal``
it can decrypt every client's update. The keys are split as on real machines: the server's key
directory holds ``public.tenseal`` only, the clients' holds ``secret.tenseal`` only. The server runs
(``run_server``, what ``fedloom server`` calls) and real clients connect to it over gRPC with TLS
and tokens on 127.0.0.1. The server thread is also watched: no context holding a secret key may be
created or loaded in it. (``tests/e2e/test_deploy_e2e.py`` runs the same split with processes.)
"""

from __future__ import annotations

import shutil
import threading

import pytest

pytest.importorskip("tenseal")

from fedloom.app.config import RunConfig  # noqa: E402
from fedloom.errors import ConfigError  # noqa: E402
from fedloom.net import ClientConfig, ServerConfig, create_credentials, run_client, run_server  # noqa: E402
from fedloom.privacy.he import context as he_context  # noqa: E402
from fedloom.privacy.he import write_keys  # noqa: E402
from fedloom.simulation import run_simulation  # noqa: E402

SERVER_THREAD = "adv-he-server"


@pytest.fixture
def split_keys(tmp_path):
    """``(both, server_dir, client_dir)``: one key pair, its halves in two directories."""
    both = tmp_path / "keys"
    write_keys(both, poly_degree=4096, scale_bits=30)
    server_dir, client_dir = tmp_path / "server-keys", tmp_path / "client-keys"
    server_dir.mkdir()
    client_dir.mkdir()
    shutil.copy(both / he_context.PUBLIC_FILE, server_dir)
    shutil.copy(both / he_context.SECRET_FILE, client_dir)
    return both, server_dir, client_dir


@pytest.fixture
def secrets_in_server_thread(monkeypatch):
    """Names of the secret contexts created or loaded in the server thread (must stay empty)."""
    seen: list[str] = []
    make, load = he_context.make_context, he_context.load_context

    def watch(ctx, how):
        if threading.current_thread().name == SERVER_THREAD and ctx.is_private():
            seen.append(how)
        return ctx

    monkeypatch.setattr(he_context, "make_context", lambda **kw: watch(make(**kw), "make_context"))
    monkeypatch.setattr(he_context, "load_context", lambda data: watch(load(data), "load_context"))
    return seen


def _he_config(**changes) -> RunConfig:
    return RunConfig(dataset="iris", model="logistic", clients=3, rounds=2, partition="iid", he=True,
                     he_poly_degree=4096, he_scale=30, fraction_evaluate=1.0, progress=False, **changes)


def test_he_server_runs_with_the_public_key_only_and_clients_decrypt(tmp_path, split_keys, secrets_in_server_thread):
    both, server_dir, client_dir = split_keys
    assert sorted(p.name for p in server_dir.iterdir()) == ["public.tenseal"]
    creds = create_credentials(tmp_path / "creds", clients=["0", "1", "2"])
    server_cfg, client_cfg = _he_config(he_keys=str(server_dir)), _he_config(he_keys=str(client_dir))
    scfg = ServerConfig(address="127.0.0.1:0", credentials=str(creds), allowed_clients=["0", "1", "2"],
                        checkpoint_dir=str(tmp_path / "run"), heartbeat_s=0.5, wait_clients_s=60)
    ccfg = ClientConfig(credentials=str(creds / "clients" / "{name}"), heartbeat_s=0.5)
    port: list[int] = []
    out: dict = {}

    def serve() -> None:
        try:
            out["result"] = run_server(server_cfg, scfg, on_listen=port.append)
        except BaseException as exc:  # surfaced below
            out["error"] = exc
            port.append(-1)

    server = threading.Thread(target=serve, name=SERVER_THREAD, daemon=True)
    server.start()
    while not port:
        server.join(0.05)
    assert port[0] > 0, f"the server did not start: {out.get('error')!r}"
    clients = [threading.Thread(target=run_client, args=(client_cfg, ccfg), daemon=True,
                                kwargs={"server": f"127.0.0.1:{port[0]}", "name": str(i)}) for i in range(3)]
    for c in clients:
        c.start()
    server.join(120)
    for c in clients:
        c.join(10)
    assert "error" not in out, out.get("error")
    result = out["result"]
    assert secrets_in_server_thread == []  # no secret context ever existed in the server
    assert result.parameters.names == []  # the server never had the model
    assert [h.round for h in result.history] == [1, 2]
    assert all(h.metrics["fit_clients"] == 3 and h.metrics["fit_failures"] == 0 for h in result.history)
    # the clients decrypted the server's aggregate: the deployment equals the simulation with the same keys
    sim = run_simulation(_he_config(he_keys=str(both)))
    assert result.final["fed_loss"] == pytest.approx(sim.final["fed_loss"], rel=1e-4)
    assert result.final["fed_accuracy"] == pytest.approx(sim.final["fed_accuracy"], abs=1e-9)


def test_deployed_he_server_and_clients_refuse_fresh_keys(tmp_path):
    """Without he_keys a server would make (and hold) a fresh secret key, and each client other keys."""
    scfg = ServerConfig(address="127.0.0.1:0", checkpoint_dir=str(tmp_path / "run"), wait_clients_s=1,
                        max_round_retries=0)
    with pytest.raises(ConfigError, match="public.tenseal"):
        run_server(_he_config(), scfg, insecure=True)
    with pytest.raises(ConfigError, match="secret.tenseal"):
        run_client(_he_config(), ClientConfig(), server="127.0.0.1:1", name="0", insecure=True)
