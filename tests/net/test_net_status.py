"""The live status pieces on their own: the admin token of `fedloom certs`, the status board's stages,
the pool's snapshot, the admin RPC and the status page's access rules (fast, in-process, real gRPC/HTTP)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from net_helpers import AddOne

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.engine import RoundRecord
from fedloom.errors import ConfigError, FedloomError
from fedloom.net import Authenticator, GrpcPool, channel_credentials, create_credentials
from fedloom.net.auth import AuthError, load_token_hashes
from fedloom.net.certs import ADMIN_HASH_FILE, ADMIN_NAME, hash_token
from fedloom.net.status import AdminAuth, StatusBoard, format_status, query_status, reply_to_dict, status_service
from fedloom.net.status_page import StatusPage

W = Parameters({"w": np.zeros(3, np.float32)})


# -- credentials -----------------------------------------------------------------------------
def test_certs_issue_an_admin_token_that_is_no_client_token(creds):
    token = (creds / "admin" / "token").read_text()
    assert (creds / ADMIN_HASH_FILE).read_text().strip() == hash_token(token)
    assert oct((creds / "admin" / "token").stat().st_mode & 0o777) == "0o600"
    assert oct((creds / "admin" / "client.key").stat().st_mode & 0o777) == "0o600"
    assert hash_token(token) not in load_token_hashes(creds / "tokens.json").values()
    assert (creds / "admin" / "ca.pem").read_bytes() == (creds / "ca.pem").read_bytes()


def test_the_admin_name_is_reserved(tmp_path):
    with pytest.raises(ConfigError, match="reserved for the operator"):
        create_credentials(tmp_path, clients=["a", ADMIN_NAME])


# -- admin token check -------------------------------------------------------------------------
def test_admin_auth_says_what_is_wrong(creds):
    token = (creds / "admin" / "token").read_text()
    auth = AdminAuth.from_file(creds / ADMIN_HASH_FILE)
    auth.check(f"Bearer {token}")
    with pytest.raises(AuthError, match="missing admin token") as missing:
        auth.check("")
    assert missing.value.code == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(AuthError, match="a client's token is not an admin token"):
        auth.check("Bearer " + (creds / "clients" / "0" / "token").read_text())
    with pytest.raises(AuthError, match="no admin token: create credentials with `fedloom certs`"):
        AdminAuth(None).check(f"Bearer {token}")
    with pytest.raises(AuthError, match="without TLS"):
        AdminAuth(hash_token(token), plaintext=True).check(f"Bearer {token}")


def test_a_malformed_admin_hash_file_is_a_config_error(tmp_path):
    (tmp_path / "h").write_text("not a hash")
    with pytest.raises(ConfigError, match="hex SHA-256"):
        AdminAuth.from_file(tmp_path / "h")
    with pytest.raises(ConfigError, match="does not exist"):
        AdminAuth.from_file(tmp_path / "missing")


# -- status board ------------------------------------------------------------------------------
def test_board_stage_round_metrics_and_epsilon():
    clients: list[dict] = []
    board = StatusBoard(rounds=3, clients=lambda: clients, min_clients=2)
    st = board.status()
    assert (st["stage"], st["round"], st["completed_rounds"], st["epsilon"]) == ("waiting for clients", 1, 0, None)
    clients[:] = [{"name": n, "stage": "training", "last_heartbeat_s": 0.1, "connected_s": 1.0} for n in "ab"]
    assert board.status()["stage"] == "training"
    clients[0]["stage"] = clients[1]["stage"] = "evaluating"
    assert board.status()["stage"] == "evaluating"
    clients[0]["stage"] = clients[1]["stage"] = "idle"
    assert board.status()["stage"] == "aggregating"
    board.on_round_end(RoundRecord(1, {"accuracy": 0.5, "loss": 1.0, "epsilon": 0.7, "bytes_up": 10.0}), None)
    board.on_round_end(RoundRecord(2, {"accuracy": 0.75, "loss": float("nan")}), None)
    st = board.status()
    assert (st["round"], st["completed_rounds"], st["epsilon"]) == (3, 2, 0.7)
    assert st["history"][0] == {"round": 1, "accuracy": 0.5, "loss": 1.0, "epsilon": 0.7}
    resumed = StatusBoard(rounds=3, clients=lambda: clients, min_clients=2)
    resumed.restore([RoundRecord(1, {"accuracy": 0.5}), RoundRecord(2, {"accuracy": 0.6})])
    assert (resumed.status()["round"], resumed.status()["completed_rounds"]) == (3, 2)
    board.finish("finished")
    assert (board.status()["stage"], board.status()["round"]) == ("finished", 2)
    again = reply_to_dict(board.reply())  # through the protobuf message and back
    assert again["clients"] == clients and again["epsilon"] == pytest.approx(0.7)
    assert "loss" not in again["metrics"]  # NaN is left out of the reply
    text = format_status(again, "h:1")
    assert "server h:1: round 2 of 3 (2 completed), stage: finished" in text
    assert "epsilon spent: 0.7000" in text and "clients: 2 connected (2 needed to start a round)" in text


# -- pool snapshot and the admin RPC -----------------------------------------------------------
def _pool(creds, **kwargs) -> GrpcPool:
    auth = Authenticator(token_hashes=load_token_hashes(creds / "tokens.json"), allowed=["0", "1", "2"])
    server_creds = grpc.ssl_server_credentials([((creds / "server.key").read_bytes(),
                                                 (creds / "server.pem").read_bytes())])
    return GrpcPool(address="127.0.0.1:0", authenticator=auth, server_credentials=server_creds,
                    heartbeat_s=0.5, heartbeat_timeout_s=5.0, wait_clients_s=10.0, **kwargs)


def test_snapshot_lists_clients_with_heartbeat_and_stage(harness):
    h = harness(min_clients=2)
    h.start("1", AddOne(delay=1.0))
    h.start("0", AddOne())
    h.pool.available()
    rows = h.pool.snapshot()
    assert [r["name"] for r in rows] == ["0", "1"] and {r["stage"] for r in rows} == {"idle"}
    assert all(0 <= r["last_heartbeat_s"] < 5 and r["connected_s"] >= 0 for r in rows)
    done = threading.Event()
    threading.Thread(target=lambda: (h.pool.fit([("1", FitIns(W, {"round": 1}))], expected=W.spec(), timeout=10),
                                     done.set()), daemon=True).start()
    deadline = time.monotonic() + 5
    while {r["name"]: r["stage"] for r in h.pool.snapshot()}.get("1") != "training":
        assert time.monotonic() < deadline, h.pool.snapshot()
        time.sleep(0.02)
    assert done.wait(10)
    assert {r["stage"] for r in h.pool.snapshot()} == {"idle"}
    with pytest.raises(RuntimeError, match="before start"):
        h.pool.add_service(status_service(StatusBoard(rounds=1, clients=list, min_clients=1), AdminAuth(None)))


def test_status_rpc_answers_the_admin_token_only(creds):
    pool = _pool(creds)
    board = StatusBoard(rounds=5, clients=pool.snapshot, min_clients=1)
    pool.add_service(status_service(board, AdminAuth.from_file(creds / ADMIN_HASH_FILE)))
    pool.start()
    try:
        server, tls = f"127.0.0.1:{pool.port}", channel_credentials(ca_cert=creds / "ca.pem")
        board.on_round_end(RoundRecord(1, {"accuracy": 0.9}), None)
        reply = query_status(server, token=(creds / "admin" / "token").read_text(), credentials=tls)
        assert (reply.round, reply.completed_rounds, dict(reply.metrics)) == (2, 1, {"accuracy": 0.9})
        with pytest.raises(FedloomError, match="refused the status request: wrong admin token"):
            query_status(server, token=(creds / "clients" / "0" / "token").read_text(), credentials=tls)
    finally:
        pool.close()
    with pytest.raises(FedloomError, match=f"no fedloom server answered at {server}"):
        query_status(server, token="x", credentials=tls, timeout_s=1)


# -- status page -------------------------------------------------------------------------------
def _get(url: str, headers: dict | None = None):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_status_page_refuses_without_the_admin_token_and_serves_with_it(creds):
    token = (creds / "admin" / "token").read_text()
    board = StatusBoard(rounds=2, clients=lambda: [], min_clients=1)
    board.on_round_end(RoundRecord(1, {"accuracy": 0.5, "loss": float("inf")}), None)
    page = StatusPage(board, AdminAuth.from_file(creds / ADMIN_HASH_FILE)).start()
    try:
        url = page.url
        for path in ("", "status.json"):
            status, _, body = _get(url + path)
            assert status == 401 and "refused: this status page needs the admin token" in body
        status, _, body = _get(url + "?token=" + (creds / "clients" / "0" / "token").read_text())
        assert status == 401 and "a client's token is not an admin token" in body
        status, headers, _ = _get(url + "status.json", {"Authorization": "Bearer nope"})
        assert status == 401
        status, headers, body = _get(url + "status.json", {"Authorization": f"Bearer {token}"})
        st = json.loads(body)
        assert status == 200 and st["completed_rounds"] == 1 and st["metrics"]["loss"] is None  # inf -> null
        status, headers, _ = _get(url + "?token=" + token)
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, headers, body = _get(url, {"Cookie": cookie.split(";")[0]})
        assert status == 200 and 'id="round"' in body and "<script>" in body
        assert " src=" not in body and "<link" not in body and "@import" not in body  # everything inline: no CDN
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert _get(url, {"Cookie": "fedloom_status=forged"})[0] == 401
    finally:
        page.close()


def test_a_plaintext_status_page_listens_on_loopback_only(creds):
    board = StatusBoard(rounds=1, clients=list, min_clients=1)
    with pytest.raises(ConfigError, match="not a loopback address"):
        StatusPage(board, AdminAuth(None), host="0.0.0.0")


def test_status_page_port_in_use_is_a_config_error(creds):
    board = StatusBoard(rounds=1, clients=list, min_clients=1)
    first = StatusPage(board, AdminAuth(None))
    try:
        with pytest.raises(ConfigError, match="choose another status_port"):
            StatusPage(board, AdminAuth(None), port=first.port)
    finally:
        first.close()
