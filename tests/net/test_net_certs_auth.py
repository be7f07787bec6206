"""Credentials from `fedloom certs`, and who the server admits."""

from __future__ import annotations

import ipaddress
import json
import stat

import grpc
import numpy as np
import pytest
from cryptography import x509
from net_helpers import AddOne

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.errors import ConfigError
from fedloom.net import Authenticator, AuthError, ClientRuntime, channel_credentials, create_credentials
from fedloom.net.certs import hash_token
from fedloom.net.client import ConnectFailed
from fedloom.net.proto import fedloom_pb2 as pb
from fedloom.net.proto import fedloom_pb2_grpc as pb_grpc


def test_certificate_layout_and_sans(creds):
    server = x509.load_pem_x509_certificate((creds / "server.pem").read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "fl.example.org"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("127.0.0.1"),
                                                             ipaddress.ip_address("10.0.0.7")}
    ca = x509.load_pem_x509_certificate((creds / "ca.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    client = x509.load_pem_x509_certificate((creds / "clients" / "1" / "client.pem").read_bytes())
    client.verify_directly_issued_by(ca)
    assert client.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "1"
    token = (creds / "clients" / "1" / "token").read_text()
    assert json.loads((creds / "tokens.json").read_text())["1"] == hash_token(token)
    for secret in (creds / "ca.key", creds / "server.key", creds / "clients" / "1" / "token"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_invalid_client_names(tmp_path):
    with pytest.raises(ConfigError, match="invalid client name"):
        create_credentials(tmp_path, clients=["../evil"])
    with pytest.raises(ConfigError, match="unique"):
        create_credentials(tmp_path, clients=["a", "a"])


def test_authenticator_rules():
    auth = Authenticator(token_hashes={"a": hash_token("ta"), "b": hash_token("tb")}, allowed=["a"])
    assert auth.identify({"authorization": "Bearer ta"}, None) == "a"
    cases = [({}, None, grpc.StatusCode.UNAUTHENTICATED, "missing token"),
             ({"authorization": "Bearer nope"}, None, grpc.StatusCode.UNAUTHENTICATED, "invalid token"),
             ({"authorization": "Bearer tb"}, None, grpc.StatusCode.PERMISSION_DENIED, "not allowed")]
    for md, cert, code, match in cases:
        with pytest.raises(AuthError, match=match) as err:
            auth.identify(md, cert)
        assert err.value.code == code
    both = Authenticator(token_hashes={"a": hash_token("ta")}, require_cert=True)
    assert both.identify({"authorization": "Bearer ta"}, "a") == "a"
    with pytest.raises(AuthError, match="certificate"):
        both.identify({"authorization": "Bearer ta"}, "b")
    with pytest.raises(AuthError, match="certificate is required"):
        both.identify({"authorization": "Bearer ta"}, None)
    open_auth = Authenticator()
    assert open_auth.identify({"x-fedloom-client": "z"}, None) == "z"


def _raw_connect(address: str, ca: bytes, metadata) -> grpc.RpcError:
    with grpc.secure_channel(address, grpc.ssl_channel_credentials(ca)) as channel:
        stub = pb_grpc.FedloomStub(channel)
        hello = iter([pb.ClientMessage(hello=pb.Hello(protocol_version=1))])
        with pytest.raises(grpc.RpcError) as err:
            next(iter(stub.Connect(hello, metadata=metadata, timeout=10)))
        return err.value


def test_server_refuses_bad_and_revoked_credentials_with_clear_status(creds, harness):
    h = harness()
    ca = (creds / "ca.pem").read_bytes()
    err = _raw_connect(h.address, ca, [("authorization", "Bearer forged")])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "invalid token" in err.details()
    err = _raw_connect(h.address, ca, [])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    revoked = (creds / "clients" / "revoked" / "token").read_text()
    err = _raw_connect(h.address, ca, [("authorization", f"Bearer {revoked}")])
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "revoked" in err.details()
    # the runtime gives up at once (no reconnect loop) with an AuthError
    rt = h.runtime("revoked", AddOne())
    with pytest.raises(AuthError, match="not allowed"):
        rt.run()
    assert h.pool.connected() == []


def test_wrong_ca_fails_tls(creds, harness, tmp_path):
    h = harness()
    other = create_credentials(tmp_path / "other", clients=["0"])
    rt = ClientRuntime(AddOne(), server=h.address, credentials=channel_credentials(ca_cert=other / "ca.pem"),
                       token=(creds / "clients" / "0" / "token").read_text(), give_up_after_s=0.5,
                       backoff_initial_s=0.05, backoff_max_s=0.1)
    with pytest.raises(ConnectFailed, match="presented a certificate this client does not trust"):
        rt.run()  # said at once, not retried until give_up_after_s


def test_mutual_tls_identity(creds):
    from fedloom.net import GrpcPool

    server_creds = grpc.ssl_server_credentials(
        [((creds / "server.key").read_bytes(), (creds / "server.pem").read_bytes())],
        root_certificates=(creds / "ca.pem").read_bytes(), require_client_auth=True)
    pool = GrpcPool(address="127.0.0.1:0", authenticator=Authenticator(require_cert=True, allowed=["2"]),
                    server_credentials=server_creds, heartbeat_s=0.5).start()
    try:
        cdir = creds / "clients" / "2"
        rt = ClientRuntime(AddOne(), server=f"127.0.0.1:{pool.port}", heartbeat_s=0.5,
                           credentials=channel_credentials(ca_cert=cdir / "ca.pem", client_cert=cdir / "client.pem",
                                                           client_key=cdir / "client.key"))
        import threading

        t = threading.Thread(target=rt.run, daemon=True)
        t.start()
        assert pool.wait_for_clients(1, timeout=10)
        assert pool.connected() == ["2"]  # identity from the certificate's common name
        p = Parameters({"w": np.zeros(3, np.float32)})
        out = pool.fit([("2", FitIns(p, {}))], expected=p.spec(), timeout=10)
        assert out.failures == [] and out.results[0][1].parameters["w"].tolist() == [1.0, 1.0, 1.0]
    finally:
        pool.close()
