"""`fedloom client` errors that say what to do, each with its exit status (2 files, 3 refused, 4 TLS mismatch or
untrusted server, 5 no server), against real servers on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_net_client_errors import _free_port, _pool

from fedloom.cli import main
from fedloom.net import create_credentials
from fedloom.net.certs import revoke_client

TOML = """dataset = "iris"
clients = 3
hidden = 8
partition = "iid"
progress = false
[client]
credentials = "creds/clients/{name}"
heartbeat_s = 0.5
backoff_initial_s = 0.05
backoff_max_s = 0.2
connect_timeout_s = 20
"""


@pytest.fixture
def site(tmp_path, creds):
    shutil.copytree(creds, tmp_path / "creds")
    (tmp_path / "deploy.toml").write_text(TOML)
    return tmp_path


def client(site: Path, capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["client", "--config", str(site / "deploy.toml"), *args])
    return exit_info.value.code, capsys.readouterr().err


def test_unknown_name_without_a_credentials_folder_says_which_folder_and_how(site, capsys):
    code, err = client(site, capsys, "--server", "127.0.0.1:1", "--name", "hospital-x")
    assert code == 2
    assert str(site / "creds" / "clients" / "hospital-x") in err
    assert "fedloom certs --out creds --clients hospital-x" in err
    assert "--insecure" not in err


def test_refused_certificate_and_revoked_client_exit_3(site, capsys, tmp_path):
    pool = _pool(site / "creds")
    try:
        address = f"127.0.0.1:{pool.port}"
        mixed = tmp_path / "mixed"  # the right CA and token, a certificate from another CA
        other = create_credentials(tmp_path / "other", clients=["0"]) / "clients" / "0"
        shutil.copytree(site / "creds" / "clients" / "0", mixed)
        for f in ("client.pem", "client.key"):
            shutil.copy(other / f, mixed / f)
        code, err = client(site, capsys, "--server", address, "--name", "0", "--credentials", str(mixed))
        assert code == 3 and "refused this client's certificate" in err and "not issued by the server's CA" in err
        revoke_client(site / "creds", "1")
        code, err = client(site, capsys, "--server", address, "--name", "1")
        assert code == 3 and "was revoked" in err
    finally:
        pool.close()


def test_tls_and_plaintext_mismatches_exit_4(site, capsys):
    tls_pool, plain_pool = _pool(site / "creds", mtls=False), _pool(site / "creds", tls=False)
    try:
        code, err = client(site, capsys, "--server", f"127.0.0.1:{tls_pool.port}", "--name", "0", "--insecure",
                           "--credentials", "")
        assert code == 4 and "requires TLS, but this client connects in plaintext" in err
        code, err = client(site, capsys, "--server", f"127.0.0.1:{plain_pool.port}", "--name", "0")
        assert code == 4 and "speaks plaintext" in err
    finally:
        tls_pool.close()
        plain_pool.close()


def test_no_server_exits_5_after_the_connect_timeout(site, capsys):
    port = _free_port()
    code, err = client(site, capsys, "--server", f"127.0.0.1:{port}", "--name", "0", "--connect-timeout", "1")
    assert code == 5 and f"no fedloom server at 127.0.0.1:{port}" in err and "nothing answered for 1s" in err


def test_certs_revoke_command(site, capsys):
    main(["certs", "revoke", "2", "--out", str(site / "creds")])
    assert "revoked client '2'" in capsys.readouterr().out
    assert (site / "creds" / "crl.pem").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["certs", "revoke", "nobody", "--out", str(site / "creds")])
    assert exit_info.value.code == 2 and "no client 'nobody'" in capsys.readouterr().err
