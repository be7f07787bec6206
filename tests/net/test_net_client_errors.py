"""Client errors that say what to do: refused certificates, TLS/plaintext mismatches, no server, revocation,
missing credentials; for the runtime, and for `fedloom client` with its exit status."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from net_helpers import AddOne

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.net import Authenticator, AuthError, ClientRuntime, GrpcPool, channel_credentials, create_credentials
from fedloom.net.auth import Revocations
from fedloom.net.certs import CRL_NAME, revoke_client
from fedloom.net.client import ConnectFailed, NoServer

W = Parameters({"w": np.zeros(3, np.float32)})
FAST = {"heartbeat_s": 0.3, "server_timeout_s": 5.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}


@pytest.fixture
def site(tmp_path, creds):
    """A private copy of the credentials (revocation changes them)."""
    return Path(shutil.copytree(creds, tmp_path / "creds"))


def _pool(site: Path, *, tls: bool = True, mtls: bool = True, **kwargs) -> GrpcPool:
    if not tls:
        return GrpcPool(address="127.0.0.1:0", authenticator=Authenticator(), heartbeat_s=0.3, **kwargs).start()
    ca = (site / "ca.pem").read_bytes()
    pair = ((site / "server.key").read_bytes(), (site / "server.pem").read_bytes())
    server_creds = grpc.ssl_server_credentials([pair], root_certificates=ca if mtls else None,
                                               require_client_auth=mtls)
    auth = Authenticator(tokens_file=site / "tokens.json", require_cert=mtls,
                         revocations=Revocations(site / CRL_NAME, ca, interval_s=0.1) if mtls else None)
    return GrpcPool(address="127.0.0.1:0", authenticator=auth, server_credentials=server_creds, heartbeat_s=0.3,
                    **kwargs).start()


def _runtime(address: str, cdir: Path | None, *, ca: Path | None = None, cert: Path | None = None,
             key: Path | None = None, **kwargs) -> ClientRuntime:
    if cdir is None:
        return ClientRuntime(AddOne(), server=address, name="0", **{**FAST, **kwargs})
    creds = channel_credentials(ca_cert=ca or cdir / "ca.pem", client_cert=cert, client_key=key)
    return ClientRuntime(AddOne(), server=address, credentials=creds, token=(cdir / "token").read_text(),
                         **{**FAST, **kwargs})


def _run(rt: ClientRuntime, timeout: float = 20.0):
    """Run ``rt`` in a thread; what it raised (or returned), and how long it took."""
    box: list = []
    t0 = time.monotonic()

    def go():
        try:
            box.append(rt.run())
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            box.append(exc)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        rt.stop()
        t.join(5)
        pytest.fail("the client kept retrying")
    return box[0], time.monotonic() - t0


def _expired_cert(site: Path, out: Path) -> tuple[Path, Path]:
    ca_key = serialization.load_pem_private_key((site / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((site / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "0")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=10)).not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    (out / "client.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "client.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return out / "client.pem", out / "client.key"


def test_certificates_the_server_refuses_are_said_at_once(site, tmp_path):
    # before: UNAVAILABLE "Socket closed", indistinguishable from an outage, retried forever
    pool = _pool(site)
    try:
        address, cdir = f"127.0.0.1:{pool.port}", site / "clients" / "0"
        other = create_credentials(tmp_path / "other", clients=["0"]) / "clients" / "0"
        expired = _expired_cert(site, tmp_path / "expired")
        cases = {
            "no certificate": ({}, "requires a client certificate (mutual TLS)"),
            "another CA": ({"cert": other / "client.pem", "key": other / "client.key"},
                           "not issued by the server's CA"),
            "expired": ({"cert": expired[0], "key": expired[1]}, "the certificate expired on"),
        }
        for what, (files, says) in cases.items():
            err, took = _run(_runtime(address, cdir, **files))
            assert isinstance(err, AuthError), what
            assert "refused this client's certificate" in str(err) and says in str(err), (what, str(err))
            assert took < 10, what
        assert pool.connected() == []
        ok = _runtime(address, cdir, cert=cdir / "client.pem", key=cdir / "client.key")
        threading.Thread(target=ok.run, daemon=True).start()
        assert pool.wait_for_clients(1, timeout=10) and pool.connected() == ["0"]
        ok.stop()
    finally:
        pool.close()


def test_plaintext_client_and_tls_server_and_the_reverse(site):
    tls_pool, plain_pool = _pool(site, mtls=False), _pool(site, tls=False)
    try:
        err, _ = _run(_runtime(f"127.0.0.1:{tls_pool.port}", None))
        assert isinstance(err, ConnectFailed) and "requires TLS, but this client connects in plaintext" in str(err)
        assert err.exit_code == 4
        err, _ = _run(_runtime(f"127.0.0.1:{plain_pool.port}", site / "clients" / "0"))
        assert isinstance(err, ConnectFailed) and "speaks plaintext" in str(err) and "--insecure" in str(err)
    finally:
        tls_pool.close()
        plain_pool.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_retries_until_connect_timeout_then_says_so(site):
    port = _free_port()
    rt = _runtime(f"127.0.0.1:{port}", site / "clients" / "0", connect_timeout_s=1.5)
    err, took = _run(rt)
    assert isinstance(err, NoServer) and f"no fedloom server at 127.0.0.1:{port}" in str(err)
    assert err.exit_code == 5 and 1.5 <= took < 8


def test_a_server_that_starts_late_is_still_reached(site):
    port = _free_port()
    rt = _runtime(f"127.0.0.1:{port}", site / "clients" / "0", connect_timeout_s=30,
                  cert=site / "clients" / "0" / "client.pem", key=site / "clients" / "0" / "client.key")
    t = threading.Thread(target=rt.run, daemon=True)
    t.start()
    time.sleep(1.0)
    pool = GrpcPool(address=f"127.0.0.1:{port}", authenticator=Authenticator(tokens_file=site / "tokens.json"),
                    server_credentials=grpc.ssl_server_credentials(
                        [((site / "server.key").read_bytes(), (site / "server.pem").read_bytes())]),
                    heartbeat_s=0.3).start()
    try:
        assert pool.wait_for_clients(1, timeout=15)
    finally:
        rt.stop()
        pool.close()


def test_revoked_client_is_dropped_and_refused_while_the_server_keeps_going(site):
    pool = _pool(site, min_clients=2)
    try:
        address = f"127.0.0.1:{pool.port}"
        rts = {n: _runtime(address, site / "clients" / n, cert=site / "clients" / n / "client.pem",
                           key=site / "clients" / n / "client.key") for n in ("0", "1")}
        errors: dict = {}

        def run(name):
            try:
                rts[name].run()
            except AuthError as exc:
                errors[name] = exc

        threads = {n: threading.Thread(target=run, args=(n,), daemon=True) for n in rts}
        for t in threads.values():
            t.start()
        assert pool.available() == ["0", "1"]
        revoke_client(site, "1")
        threads["1"].join(10)
        assert "1" in errors and "revoked" in str(errors["1"])  # dropped while connected, without a restart
        assert pool.connected() == ["0"]
        # a fresh attempt of the revoked client is refused in the handshake's aftermath, with the reason
        err, _ = _run(_runtime(address, site / "clients" / "1", cert=site / "clients" / "1" / "client.pem",
                               key=site / "clients" / "1" / "client.key"))
        assert isinstance(err, AuthError) and err.code == grpc.StatusCode.PERMISSION_DENIED
        assert "was revoked" in str(err)
        out = pool.fit([("0", FitIns(W, {}))], expected=W.spec(), timeout=10)
        assert out.failures == [] and out.results[0][1].parameters["w"].tolist() == [1.0, 1.0, 1.0]
        revoke_client(site, "1")  # idempotent: one entry
        crl = x509.load_pem_x509_crl((site / CRL_NAME).read_bytes())
        assert len(list(crl)) == 1
        assert '"1"' not in (site / "tokens.json").read_text()
    finally:
        for rt in rts.values():
            rt.stop()
        pool.close()


def test_mutual_tls_is_the_default_with_fedloom_certs_credentials(site):
    # before: require_client_cert defaulted to false, so the client certificates `fedloom certs` wrote went unused
    from fedloom.net.config import ServerConfig
    from fedloom.net.deploy import build_pool

    token_only = build_pool(ServerConfig(address="127.0.0.1:0", credentials=str(site), client_auth="token"),
                            min_clients=1)
    assert not token_only.authenticator.require_cert
    pool = build_pool(ServerConfig(address="127.0.0.1:0", credentials=str(site)), min_clients=1).start()
    try:
        assert pool.authenticator.require_cert and pool.authenticator.use_tokens
        cdir = site / "clients" / "2"
        err, _ = _run(_runtime(f"127.0.0.1:{pool.port}", cdir))  # token, no certificate
        assert isinstance(err, AuthError) and "requires a client certificate" in str(err)
        ok = _runtime(f"127.0.0.1:{pool.port}", cdir, cert=cdir / "client.pem", key=cdir / "client.key")
        threading.Thread(target=ok.run, daemon=True).start()
        assert pool.wait_for_clients(1, timeout=10) and pool.connected() == ["2"]
        ok.stop()
    finally:
        pool.close()


def test_refusals_are_logged_once_per_peer_and_minute(site, caplog):
    pool = _pool(site, mtls=False)
    try:
        ca = (site / "ca.pem").read_bytes()
        for _ in range(4):
            with grpc.secure_channel(f"127.0.0.1:{pool.port}", grpc.ssl_channel_credentials(ca)) as ch:
                call = ch.stream_stream("/fedloom.net.Fedloom/Connect", request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
                with pytest.raises(grpc.RpcError) as err:
                    list(call(iter([b""]), metadata=[("authorization", "Bearer forged")], timeout=5))
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        lines = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
        assert len(lines) == 1 and "invalid token" in lines[0]
    finally:
        pool.close()
