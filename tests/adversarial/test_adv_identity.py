"""Issue 10, finding 4: identity by claim, and tokens on plaintext channels.

The attacker controls one client process (or just the network path to the server). It must not be
able to take another site's place: an allow list is only accepted with an authenticator (tokens or
mutual TLS), the name a client claims must agree with its credentials, and a token is never
written to, nor accepted from, a plaintext channel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns, FitRes
from fedloom.errors import ConfigError
from fedloom.net import (
    Authenticator,
    AuthError,
    ClientConfig,
    ClientRuntime,
    GrpcPool,
    ServerConfig,
    build_pool,
    channel_credentials,
    create_credentials,
    load_deployment,
    run_client,
)
from fedloom.net.auth import load_token_hashes
from fedloom.net.server import SERVICE


class Adds(Client):
    """Returns the parameters plus ``step``: the honest site adds 1, the impostor 100."""

    def __init__(self, step: float) -> None:
        self.step = step

    def get_parameters(self, config):
        return Parameters({"w": np.zeros(3, np.float32)})

    def fit(self, parameters, config):
        return FitRes(Parameters({k: v + self.step for k, v in parameters.items()}), 10)

    def evaluate(self, parameters, config):
        raise NotImplementedError


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return create_credentials(tmp_path_factory.mktemp("creds"), clients=["0", "1"])


def _server_tls(creds, *, mtls: bool = False) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([((creds / "server.key").read_bytes(), (creds / "server.pem").read_bytes())],
                                       root_certificates=(creds / "ca.pem").read_bytes() if mtls else None,
                                       require_client_auth=mtls)


def _runtime(address: str, client: Client, **kwargs) -> ClientRuntime:
    return ClientRuntime(client, server=address, heartbeat_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.2,
                         give_up_after_s=5.0, **kwargs)


def _serve(rt: ClientRuntime) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            rt.run()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


def _attempt(rt: ClientRuntime, timeout: float = 10.0) -> BaseException | None:
    """Run ``rt`` until it gives up; an attempt still connected after ``timeout`` was admitted (None)."""
    t, errors = _serve(rt)
    t.join(timeout)
    if t.is_alive():
        rt.stop()
        t.join(5)
        return None
    return errors[0] if errors else None


# -- the misconfiguration that made identity a claim is refused ----------------------------------------------


def test_allow_list_without_an_authenticator_is_refused(creds, tmp_path):
    """TLS, an allow list, no tokens and no client certificates: the names on the list were claims
    anyone could make (an impostor claiming '0' replaced site 0's session). Refused everywhere."""
    tls_only = ServerConfig(address="127.0.0.1:0", server_cert=str(creds / "server.pem"),
                            server_key=str(creds / "server.key"), allowed_clients=["0", "1"])
    with pytest.raises(ConfigError, match="allowed_clients needs an authenticator"):
        build_pool(tls_only, min_clients=1)
    with pytest.raises(ConfigError, match="allowed_clients needs an authenticator"):
        tls_only.validate()
    toml = tmp_path / "deploy.toml"
    toml.write_text(f'[server]\nserver_cert = "{creds / "server.pem"}"\nserver_key = "{creds / "server.key"}"\n'
                    'allowed_clients = ["0", "1"]\n')
    with pytest.raises(ConfigError, match="allowed_clients needs an authenticator"):
        load_deployment(toml)
    with pytest.raises(ConfigError, match="allow list needs"):
        Authenticator(allowed=["0", "1"])  # the Python API: a list of claimed names is no access control
    # --insecure cannot authenticate anyone (no tokens on plaintext, no mTLS): no allow list either
    with pytest.raises(ConfigError, match="allowed_clients needs an authenticator"):
        build_pool(ServerConfig(address="127.0.0.1:0", allowed_clients=["0"]), min_clients=1, insecure=True)


# -- under a valid configuration an impostor cannot take another site's place ---------------------------------


@pytest.mark.parametrize("mode", ["tokens", "mtls"])
def test_impostor_claiming_another_sites_name_cannot_replace_its_session(creds, mode):
    """Site 0 is connected. Site 1's process (valid credentials of its own) claims to be '0', and an
    outsider without credentials claims '0' too: both are refused, site 0 keeps its session, and
    its task is answered by site 0."""
    if mode == "tokens":
        auth = Authenticator(token_hashes=load_token_hashes(creds / "tokens.json"), allowed=["0", "1"])
    else:
        auth = Authenticator(require_cert=True, allowed=["0", "1"])
    tls = _server_tls(creds, mtls=mode == "mtls")
    pool = GrpcPool(address="127.0.0.1:0", authenticator=auth, server_credentials=tls, heartbeat_s=0.5,
                    wait_clients_s=10).start()
    address = f"127.0.0.1:{pool.port}"

    def creds_of(name: str) -> dict:
        cdir = creds / "clients" / name
        if mode == "tokens":
            return {"credentials": channel_credentials(ca_cert=cdir / "ca.pem"), "token": (cdir / "token").read_text()}
        return {"credentials": channel_credentials(ca_cert=cdir / "ca.pem", client_cert=cdir / "client.pem",
                                                   client_key=cdir / "client.key")}

    honest = _runtime(address, Adds(1.0), name="0", **creds_of("0"))
    try:
        t0, errors0 = _serve(honest)
        assert pool.wait_for_clients(1, timeout=10) and pool.connected() == ["0"]
        # an insider: site 1's valid credentials, claiming to be site 0
        insider = _runtime(address, Adds(100.0), name="0", **creds_of("1"))
        error = _attempt(insider)
        assert isinstance(error, AuthError) and error.code == grpc.StatusCode.UNAUTHENTICATED, error
        assert "claims to be '0'" in str(error)
        # an outsider: TLS to the server, no credentials of any site, claiming to be site 0
        outsider = _runtime(address, Adds(100.0), name="0", credentials=channel_credentials(ca_cert=creds / "ca.pem"))
        assert isinstance(_attempt(outsider), AuthError | ConnectionError)
        assert pool.connected() == ["0"]
        p = Parameters({"w": np.zeros(3, np.float32)})
        out = pool.fit([("0", FitIns(p, {}))], expected=p.spec(), timeout=10)
        assert out.failures == [] and out.results[0][1].parameters["w"].tolist() == [1.0, 1.0, 1.0]  # site 0's
        assert errors0 == [] and t0.is_alive()
    finally:
        honest.stop()
        pool.close()


# -- a token never travels in plaintext -------------------------------------------------------------------------


class _Recorder:
    """A plaintext gRPC server for fedloom's service that records the metadata of every call it gets."""

    def __init__(self) -> None:
        from concurrent import futures

        self.seen: list[dict[str, str]] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))

        def connect(requests: Iterator[bytes], context: grpc.ServicerContext):  # noqa: ANN202
            self.seen.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "recorded")
            yield b""

        handler = grpc.stream_stream_rpc_method_handler(connect)
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Connect": handler}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def tokens_seen(self, token: str) -> list[str]:
        return [v for md in self.seen for v in md.values() if token.strip() in v]

    def close(self) -> None:
        self.server.stop(0).wait()


def test_client_never_writes_its_token_to_a_plaintext_channel(creds, tmp_path):
    """What an insecure client sends, as a plaintext peer (anyone on the path) receives it."""
    token = (creds / "clients" / "0" / "token").read_text()
    rec = _Recorder()
    address = f"127.0.0.1:{rec.port}"
    try:
        # the Python API: a token with no TLS credentials is refused before any connection
        with pytest.raises(ConfigError, match="plaintext"):
            _runtime(address, Adds(1.0), token=token, name="0").run()
        # the command line: `fedloom client --insecure` with a credentials directory holding a token
        from fedloom.app.config import RunConfig

        cfg = RunConfig(dataset="iris", clients=2, progress=False)
        ccfg = ClientConfig(credentials=str(creds / "clients" / "{name}"), heartbeat_s=0.5, give_up_after_s=5.0)
        with pytest.raises(ConfigError, match="plaintext"):
            run_client(cfg, ccfg, server=address, name="0", insecure=True)
        assert rec.tokens_seen(token) == []
        # without a token an insecure client still connects (local experiments), naming itself
        with pytest.raises(AuthError, match="recorded"):
            _runtime(address, Adds(1.0), name="0").run()
        assert rec.seen and rec.seen[-1].get("x-fedloom-client") == "0"
        assert rec.tokens_seen(token) == [] and all("authorization" not in md for md in rec.seen)
    finally:
        rec.close()


def test_server_refuses_token_auth_over_plaintext(creds):
    """A plaintext server with tokens would invite clients to send them in the clear."""
    with pytest.raises(ConfigError, match="plaintext"):
        build_pool(ServerConfig(address="127.0.0.1:0", credentials=str(creds)), min_clients=1, insecure=True)
    with pytest.raises(ConfigError, match="plaintext"):
        build_pool(ServerConfig(address="127.0.0.1:0", tokens_file=str(creds / "tokens.json")), min_clients=1,
                   insecure=True)
    with pytest.raises(ConfigError, match="plaintext"):
        GrpcPool(address="127.0.0.1:0", authenticator=Authenticator(token_hashes=load_token_hashes(
            creds / "tokens.json")), server_credentials=None)
