"""Build and run a deployed server or client from configuration (what ``fedloom server``/``client`` call).

The server builds the server side of the experiment exactly like ``fedloom run`` does (strategy,
initial model and central evaluation from the :class:`~fedloom.config.RunConfig` keys; no clients,
and under HE the public CKKS context only), swaps the in-process pool for a
:class:`~fedloom.net.server.GrpcPool`, and runs the ordinary :class:`~fedloom.engine.FederatedLoop`
with a checkpoint after every round. A round that cannot complete (too few clients) is retried
from the last checkpoint, so it consumes no randomness twice and the run stays reproducible.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import grpc

from fedloom.app.config import RunConfig
from fedloom.core.client import Client
from fedloom.engine import RoundRecord, RunResult
from fedloom.errors import ConfigError, RoundFailedError
from fedloom.ledger.receipts import receipt_book
from fedloom.net.auth import Authenticator, Revocations
from fedloom.net.certs import ADMIN_HASH_FILE, CRL_NAME, issued_client_certificates
from fedloom.net.client import ClientRuntime, channel_credentials, no_credentials_message
from fedloom.net.config import ALLOW_LIST_NEEDS_AUTH, ClientConfig, ServerConfig
from fedloom.net.server import GrpcPool
from fedloom.net.status import AdminAuth, StatusBoard, status_service
from fedloom.net.status_page import StatusPage
from fedloom.tracking import finish_trackers, open_trackers

__all__ = ["build_pool", "run_server", "build_client", "run_client", "CHECKPOINT_NAME"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.safetensors"


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} file {path} does not exist (create credentials with `fedloom certs`)") from exc


def _server_files(scfg: ServerConfig) -> dict[str, str]:
    files = {"ca_cert": scfg.ca_cert, "server_cert": scfg.server_cert, "server_key": scfg.server_key,
             "tokens_file": scfg.tokens_file}
    if scfg.credentials:
        base = Path(scfg.credentials)
        defaults = {"ca_cert": "ca.pem", "server_cert": "server.pem", "server_key": "server.key",
                    "tokens_file": "tokens.json"}
        files = {k: v or str(base / defaults[k]) for k, v in files.items()}
    return files


def _check_identity_rules(scfg: ServerConfig, files: dict[str, str], *, insecure: bool) -> None:
    """Refuse a server that would take a client's word for its identity, or read tokens in plaintext."""
    if insecure and files["tokens_file"]:
        raise ConfigError("--insecure with tokens (tokens_file, or the tokens.json of credentials): tokens would "
                          "travel in plaintext and anyone on the path could join as that client; drop --insecure "
                          "(serve with TLS) or configure no tokens for a local experiment")
    authenticated = bool(files["tokens_file"]) or (scfg.require_client_cert and not insecure)
    if scfg.allowed_clients and not authenticated:
        raise ConfigError(ALLOW_LIST_NEEDS_AUTH)


def build_pool(scfg: ServerConfig, *, min_clients: int, insecure: bool = False) -> GrpcPool:
    """The gRPC pool ``scfg`` describes (not started). ``insecure``: plaintext, no TLS."""
    files = _server_files(scfg)
    _check_identity_rules(scfg, files, insecure=insecure)
    # mTLS by default when `fedloom certs` issued client certificates (client_auth = "auto")
    mtls = not insecure and (scfg.require_client_cert or scfg.client_auth == "mtls" or (
        scfg.client_auth == "auto" and bool(scfg.credentials) and issued_client_certificates(scfg.credentials)))
    if mtls and not scfg.require_client_cert:
        scfg = dataclasses.replace(scfg, require_client_cert=True)
        log.info("clients authenticate with mutual TLS (their certificates from %s) and their tokens", scfg.credentials)
    creds = None
    if not insecure:
        if not (files["server_cert"] and files["server_key"]):
            raise ConfigError("TLS needs server_cert and server_key (or credentials = a `fedloom certs` dir); "
                              "pass --insecure for a plaintext local experiment")
        root = _read(files["ca_cert"], "CA certificate") if scfg.require_client_cert else None
        if scfg.require_client_cert and not files["ca_cert"]:
            raise ConfigError("require_client_cert needs ca_cert")
        creds = grpc.ssl_server_credentials(
            [(_read(files["server_key"], "server key"), _read(files["server_cert"], "server certificate"))],
            root_certificates=root,
            require_client_auth=scfg.require_client_cert,
        )
    elif scfg.require_client_cert:
        raise ConfigError("require_client_cert needs TLS: drop --insecure")
    allowed = scfg.allowed_clients or None
    crl = Path(files["ca_cert"]).parent / CRL_NAME if files["ca_cert"] else None
    revocations = (Revocations(crl, _read(files["ca_cert"], "CA certificate"))
                   if crl is not None and not insecure and scfg.require_client_cert else None)
    authenticator = Authenticator(tokens_file=files["tokens_file"] or None,
                                  require_cert=scfg.require_client_cert and not insecure, allowed=allowed,
                                  revocations=revocations)
    if authenticator.open and allowed is None:
        log.warning("no authentication configured: any client that can reach %s may join", scfg.address)
    return GrpcPool(
        address=scfg.address,
        authenticator=authenticator,
        server_credentials=creds,
        min_clients=min_clients,
        wait_clients_s=scfg.wait_clients_s,
        max_message_bytes=scfg.max_message_bytes,
        chunk_bytes=scfg.chunk_kb * 1024,
        heartbeat_s=scfg.heartbeat_s,
        heartbeat_timeout_s=scfg.heartbeat_timeout_s,
        max_clients=scfg.max_clients,
        hello_deadline_s=scfg.hello_deadline_s,
        max_streams_before_hello=scfg.max_streams_before_hello,
        max_connects_per_minute=scfg.max_connects_per_minute,
        max_update_ratio=scfg.max_update_ratio,
    )


class _LogRound:
    def on_round_end(self, record: RoundRecord, state: object) -> None:
        shown = {k: round(v, 4) for k, v in record.metrics.items() if k in ("accuracy", "loss", "fit_clients",
                                                                          "fit_failures", "wall_s")}
        log.info("round %d done: %s", record.round, shown)


def run_server(
    cfg: RunConfig,
    scfg: ServerConfig,
    *,
    resume: bool = False,
    insecure: bool = False,
    on_listen: Callable[[int], None] | None = None,
) -> RunResult:
    """Serve ``cfg.federation.rounds`` rounds to remote clients; returns the final state and history.

    ``on_listen`` is called with the bound port once the server listens (useful with port 0).

    Writes ``checkpoint.safetensors`` (after every round), ``history.json`` and ``model.safetensors``
    to ``scfg.checkpoint_dir``.
    """
    from fedloom.app.build import assemble_loop, build_simulation

    out = Path(scfg.checkpoint_dir)
    ckpt = out / CHECKPOINT_NAME
    if ckpt.exists() and not resume:
        raise ConfigError(f"{ckpt} exists: pass --resume to continue that run, or choose another checkpoint_dir")
    # min_clients_aggregate reaches every strategy through its constructor (wrappers such as central DP included);
    # the server side builds no clients and, under HE, loads the public context only
    sim = build_simulation(cfg, min_fit_results=scfg.min_clients_aggregate, side="server")
    if cfg.encryption.he:
        _check_server_keys(cfg.encryption.he_keys)
    min_start = scfg.min_clients_start or cfg.federation.clients
    pool = build_pool(scfg, min_clients=min_start, insecure=insecure)
    board, page = _status(scfg, pool, rounds=cfg.federation.rounds, insecure=insecure)  # fedloom status, page
    trackers = open_trackers(cfg.tracking, cfg.to_dict(), run_name=out.name)  # MLflow/TensorBoard if asked
    pool.start()
    log.info("serving on port %d; waiting for %d clients", pool.port, min_start)
    if on_listen is not None:
        on_listen(pool.port)
    # the same assembly as a simulation: SecAgg+ wraps the gRPC pool, codecs decode, epsilon is tracked
    loop = assemble_loop(sim, pool, observers=[_LogRound(), board, *trackers], checkpoint_path=ckpt,
                         round_timeout=scfg.round_deadline_s, ledger_keys=scfg.credentials or None, receipts=True)
    try:
        failures = 0
        while True:
            resumed = loop.resume_state()
            if resumed is not None:
                log.info("resuming after round %d", resumed[0].round)
                board.restore(resumed[1])
            try:
                if resumed is not None:
                    result = loop.run(state=resumed[0], history=resumed[1])
                else:
                    result = loop.run(sim.initial_parameters)
                break
            except RoundFailedError as exc:
                failures += 1
                if failures > scfg.max_round_retries:
                    raise
                log.warning("%s; retrying from the last checkpoint (%d/%d)", exc, failures, scfg.max_round_retries)
        # the run's outputs first, then the transport: nothing a client does can keep them from being written
        from safetensors.numpy import save_file

        from fedloom.core.atomic import atomic_write, atomic_write_text

        # atomically (temp file, fsync, rename, directory fsync): a crash leaves the old file or the new one
        tensors = {k: v for k, v in result.parameters.items()}
        atomic_write(out / "model.safetensors", lambda tmp: save_file(tensors, tmp), mode=0o644)
        atomic_write_text(out / "history.json", json.dumps([h.as_dict() for h in result.history], indent=1))
        board.finish("finished")
        pool.close("training finished")
    except BaseException as exc:
        log.error("server stopping: %s: %s", type(exc).__name__, exc)
        board.finish("stopped")
        pool.close("server stopped")
        finish_trackers(trackers)
        raise
    finally:
        if page is not None:
            page.close()
    finish_trackers(trackers, result, out / "model.safetensors")
    return result


def _status(scfg: ServerConfig, pool: GrpcPool, *, rounds: int,
            insecure: bool) -> tuple[StatusBoard, StatusPage | None]:
    """The live status of the run: the admin ``Status`` RPC on the pool's port, and the web page if
    ``status_port`` is set (behind the admin token of ``fedloom certs``)."""
    hash_file = scfg.admin_token_hash
    if not hash_file and scfg.credentials and (Path(scfg.credentials) / ADMIN_HASH_FILE).exists():
        hash_file = str(Path(scfg.credentials) / ADMIN_HASH_FILE)
    auth = AdminAuth.from_file(hash_file)
    board = StatusBoard(rounds=rounds, clients=pool.snapshot, min_clients=pool.min_clients)
    # under --insecure the admin token would cross the network in plaintext: the RPC refuses every request
    pool.add_service(status_service(board, AdminAuth(None, plaintext=True) if insecure else auth))
    if not scfg.status_port:
        return board, None
    if auth.token_hash is None:
        raise ConfigError("status_port needs an admin token: run `fedloom certs` (it writes admin.sha256) and set "
                          "[server] credentials to its folder, or admin_token_hash")
    files = _server_files(scfg)
    tls = not insecure and bool(files["server_cert"])
    page = StatusPage(board, auth, host=scfg.status_host, port=scfg.status_port,
                      certfile=files["server_cert"] if tls else None, keyfile=files["server_key"] if tls else None)
    return board, page.start()


def _check_server_keys(key_dir: str) -> None:
    from fedloom.privacy.he.context import SECRET_FILE

    log.info("HE: the server holds the public CKKS context only (%s)", Path(key_dir) / "public.tenseal")
    if (Path(key_dir) / SECRET_FILE).exists():
        log.warning("HE: %s is on the server's machine; the server never reads it, but whoever can read it can "
                    "decrypt every update: give the server public.tenseal only", Path(key_dir) / SECRET_FILE)


def _import_factory(spec: str):  # noqa: ANN202 - returns a ClientFn
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ConfigError(f"client_fn must be 'package.module:factory', got {spec!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load client_fn {spec!r}: {exc}") from exc


def build_client(cfg: RunConfig, ccfg: ClientConfig, name: str) -> Client:
    """The client object: ``client_fn(name)`` if configured, else the RunConfig's client ``index``."""
    if ccfg.client_fn:
        return _import_factory(ccfg.client_fn)(name)
    from fedloom.app.build import build_simulation

    index = ccfg.index
    if index < 0:
        if not name.isdigit():
            raise ConfigError(f"client {name!r}: set [client] index (which partition of the RunConfig data)")
        index = int(name)
    if index >= cfg.federation.clients:
        raise ConfigError(f"client index {index} but the config has clients = {cfg.federation.clients}")
    return build_simulation(cfg, side="client").client_fn(str(index))


def run_client(cfg: RunConfig, ccfg: ClientConfig, *, server: str, name: str = "", insecure: bool = False) -> str:
    """Connect the configured client to ``server`` and serve until the server says goodbye."""
    name = name or ccfg.name
    cred_dir = ccfg.credentials.replace("{name}", name) if ccfg.credentials else ""
    if cred_dir and not insecure and not Path(cred_dir).is_dir():
        raise ConfigError(no_credentials_message(name, cred_dir))
    def pick(value: str, default: str) -> str:
        if value:
            return value
        return str(Path(cred_dir) / default) if cred_dir and (Path(cred_dir) / default).exists() else ""

    ca, cert, key, token_file = (pick(ccfg.ca_cert, "ca.pem"), pick(ccfg.client_cert, "client.pem"),
                                 pick(ccfg.client_key, "client.key"), pick(ccfg.token_file, "token"))
    if insecure and token_file:
        raise ConfigError(f"--insecure with a token ({token_file}): refusing to send it over a plaintext channel, "
                          "where anyone on the path could read it and join as this client; drop --insecure (TLS)")
    token = _read(token_file, "token").decode().strip() if token_file else None
    if not name and cert:
        from cryptography import x509

        cn = x509.load_pem_x509_certificate(_read(cert, "client certificate")).subject
        name = cn.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value  # type: ignore[assignment]
    if not name:
        raise ConfigError("the client needs a name: --name, [client] name, or a client certificate")
    if ccfg.threads:
        import torch

        torch.set_num_threads(ccfg.threads)
    creds = None
    if not insecure:
        if not ca:
            raise ConfigError("TLS needs the CA certificate: set [client] credentials (or --credentials) to the "
                              "folder `fedloom certs` wrote for this client (creds/clients/NAME), or ca_cert")
        creds = channel_credentials(ca_cert=ca, client_cert=cert or None, client_key=key or None)
    client = build_client(cfg, ccfg, name)
    runtime = ClientRuntime(
        client, server=server, credentials=creds, token=token, name=name,
        heartbeat_s=ccfg.heartbeat_s, server_timeout_s=ccfg.server_timeout_s,
        backoff_initial_s=ccfg.backoff_initial_s, backoff_max_s=ccfg.backoff_max_s,
        give_up_after_s=ccfg.give_up_after_s, connect_timeout_s=ccfg.connect_timeout_s,
        max_message_bytes=ccfg.max_message_bytes,
        chunk_bytes=ccfg.chunk_kb * 1024,
        receipts=receipt_book(cred_dir, name),  # checks the ledger's receipts against cred_dir/ledger.pub
    )
    return runtime.run()
