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
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from fedloom.app.config import RunConfig
from fedloom.core.client import Client, ClientWrapper
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.engine import FederatedLoop, RoundRecord, RunResult, task_seed
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

if TYPE_CHECKING:
    from fedloom.runs.participation import ParticipationPool
    from fedloom.runs.store import RunStore

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

    ``scfg.checkpoint_dir`` becomes the same run directory ``fedloom run`` writes (config.toml,
    metrics.sqlite, summary.json, model.safetensors, plots, report.html; ``fedloom report`` reads
    it), plus ``checkpoint.safetensors`` after every round, ``history.json``, and who took part in
    which round (``participation`` in metrics.sqlite and summary.json). Each round's ``wall_s``
    excludes the wait for clients to connect, recorded as ``wait_s``.
    """
    from fedloom.app.build import assemble_loop, build_simulation
    from fedloom.data.datasets import label_mapping
    from fedloom.runs.participation import ParticipationPool
    from fedloom.runs.store import RunStore

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
    grpc_pool = build_pool(scfg, min_clients=min_start, insecure=insecure)
    board, page = _status(scfg, grpc_pool, rounds=cfg.federation.rounds, insecure=insecure)  # fedloom status, page
    trackers = open_trackers(cfg.tracking, cfg.to_dict(), run_name=out.name)  # MLflow/TensorBoard if asked
    grpc_pool.start()
    pool = ParticipationPool(grpc_pool)  # who took part in which round, for the run directory
    log.info("serving on port %d; waiting for %d clients", grpc_pool.port, min_start)
    if on_listen is not None:
        on_listen(grpc_pool.port)
    store = RunStore(out)
    store.write_config(cfg.to_nested())
    labels = label_mapping(sim.dataset)
    if labels:
        store.write_labels(labels)
    recorder = _RoundRecorder(store, pool)
    # the same assembly as a simulation: SecAgg+ wraps the gRPC pool, codecs decode, epsilon is tracked;
    # the log line first: it follows the checkpoint at once, as people (and tests) watching the log expect
    observers: list[Any] = [_LogRound(), recorder, store, board, *trackers]
    loop: Any
    if cfg.asynchrony.mode == "async":  # each task its own deadline; results taken as they arrive (docs/async.md)
        from fedloom.app.build import assemble_async_loop
        from fedloom.app.rules import cohort_size
        from fedloom.engine.async_realtime import RealtimeDriver

        driver = RealtimeDriver(cfg.asynchrony.concurrency or cohort_size(cfg))
        loop = assemble_async_loop(sim, pool, observers=observers, checkpoint_path=ckpt,
                                   round_timeout=scfg.round_deadline_s, driver=driver)
    else:
        loop = assemble_loop(sim, pool, observers=observers, checkpoint_path=ckpt,
                             round_timeout=scfg.round_deadline_s, ledger_keys=scfg.credentials or None, receipts=True)
    recorder.loop = loop
    start = time.perf_counter()
    try:
        failures = 0
        while True:
            resumed = loop.resume_state()
            if resumed is not None:
                log.info("resuming after round %d", resumed[0].round)
                board.restore(resumed[1])
                for record in resumed[1]:  # a kill between checkpoint and store left a round out of the store
                    store.on_round_end(record, resumed[0])
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
        _write_run(cfg, store, result, extra={**labels}, wall_s=time.perf_counter() - start, trackers=trackers)
        board.finish("finished")
        pool.close("training finished")
    except BaseException as exc:
        log.error("server stopping: %s: %s", type(exc).__name__, exc)
        store.mark_failed(exc, cfg.to_dict(), time.perf_counter() - start)
        board.finish("stopped")
        pool.close("server stopped")
        finish_trackers(trackers)
        raise
    finally:
        if page is not None:
            page.close()
    return result


def _write_run(cfg: RunConfig, store: RunStore, result: RunResult, *, extra: dict, wall_s: float,
               trackers: list) -> None:
    """The run directory of a finished deployment: what ``fedloom run`` writes, plus ``history.json``
    and who took part (each file written atomically: a crash leaves the old file or the new one)."""
    from safetensors.numpy import save_file

    from fedloom.app.privacy import privacy_summary
    from fedloom.core.atomic import atomic_write, atomic_write_text
    from fedloom.ledger.contributions import contributions_summary
    from fedloom.runs.runner import finish_run

    out = store.path
    atomic_write_text(out / "history.json", json.dumps([h.as_dict() for h in result.history], indent=1))
    extra = {**privacy_summary(cfg, result), **contributions_summary(out), **extra,
             "participation": store.read_participation(rounds=len(result.history))}
    if result.parameters.names:
        finish_run(store, result, cfg.to_dict(), wall_s, extra=extra, trackers=trackers)
    else:  # HE: the server never holds a plaintext model (an empty model file, no plots of accuracy)
        tensors = {k: v for k, v in result.parameters.items()}
        atomic_write(out / "model.safetensors", lambda tmp: save_file(tensors, tmp), mode=0o644)
        store.write_summary(result, cfg.to_dict(), wall_s, extra=extra)
        finish_trackers(trackers, result, out / "model.safetensors")


class _RoundRecorder:
    """Adds the round's wait for clients (``wait_s``) to its record and stores who took part."""

    def __init__(self, store: RunStore, pool: ParticipationPool) -> None:
        self.store, self.pool = store, pool
        self.loop: FederatedLoop | None = None

    def on_round_end(self, record: RoundRecord, state: object) -> None:
        if self.loop is not None:
            record.metrics["wait_s"] = self.loop.last_wait_s
        self.store.write_participation([p for p in self.pool.take() if p.round <= record.round])


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


def partition_of(cfg: RunConfig, ccfg: ClientConfig, name: str) -> int:
    """Which partition of the experiment's dataset client ``name`` holds in demo mode: ``[client]
    index``, else ``[client.partitions]`` (name -> index), else the name itself if it is ``0..N-1``."""
    if ccfg.index >= 0:
        index = ccfg.index
    elif name in ccfg.partitions:
        index = ccfg.partitions[name]
    elif name.isdigit() and not ccfg.partitions:
        index = int(name)
    else:
        listed = f" (it lists {sorted(ccfg.partitions)})" if ccfg.partitions else ""
        raise ConfigError(
            f"client {name!r} has no data: add it to the shared config's [client.partitions] table{listed}, e.g. "
            f'"{name}" = 0, to train on a partition of {cfg.data.dataset}, or give this site its own data with '
            "--data FILE.csv --target-column COLUMN")
    if index >= cfg.federation.clients:
        raise ConfigError(f"client {name!r} would hold partition {index}, but the config has clients = "
                          f"{cfg.federation.clients} (partitions 0..{cfg.federation.clients - 1})")
    return index


def build_client(cfg: RunConfig, ccfg: ClientConfig, name: str) -> Client:
    """The client object: ``client_fn(name)`` if configured (``[client] client_fn`` or the experiment's
    ``client_fn``); else, with ``[client] data`` (``--data``),
    the configured algorithm on this site's own file; else (demo mode) on partition
    :func:`partition_of` of the experiment's dataset, built exactly as the simulation builds it."""
    if ccfg.client_fn or cfg.training.client_fn:
        from fedloom.app.usercode import make_user_client

        return make_user_client(cfg, name, ccfg.client_fn)
    from fedloom.app.build import build_simulation

    if ccfg.data:
        from fedloom.data.datasets import load_site_data

        path = ccfg.data.replace("{name}", name)
        target = ccfg.target_column or cfg.data.target_column
        ds = load_site_data(path, target_column=target, labels=cfg.data.label_list)
        sim = build_simulation(cfg, side="client", local_data=ds)
        classes = f"{ds.num_classes} classes {ds.label_names}" if ds.label_names else "a regression target"
        log.info("client %s trains on its own data %s: %d examples, %d features, %s", name, path,
                 len(ds.y_train), ds.num_features, classes)
        what = (f"this site's data ({path}) has {ds.num_features} feature columns and "
                + (f"the {ds.num_classes} labels {ds.label_names}" if ds.label_names else "a regression target"))
        return ModelCheck(sim.client_fn("0"), sim.initial_parameters, what, active=_checkable(cfg))
    index = partition_of(cfg, ccfg, name)
    sim = build_simulation(cfg, side="client")
    log.info("client %s trains on partition %d of %s (%s over %d clients): %d examples", name, index,
             cfg.data.dataset, cfg.data.partition, cfg.federation.clients, len(sim.splits[index].train))
    client = sim.client_fn(str(index))
    return client if name == str(index) else SimulationSeeds(client, seed=cfg.run.seed, name=name, cid=str(index))


class SimulationSeeds(ClientWrapper):
    """Demo mode under another name: train with the seeds the simulation's client ``cid`` gets.

    The server seeds each task by the client's name (``task_seed(seed, round, name)``); a demo client
    named ``hospital-a`` that holds partition 0 swaps that for ``task_seed(seed, round, "0")``, so a
    deployment reproduces ``fedloom run`` on the same config bit for bit. A seed the server chose
    otherwise is left alone.
    """

    def __init__(self, inner: Client, *, seed: int, name: str, cid: str) -> None:
        super().__init__(inner)
        self.seed, self.name, self.cid = seed, name, cid

    def _config(self, config: Config) -> Config:
        rnd = config.get("round")
        if isinstance(rnd, int) and config.get("seed") == task_seed(self.seed, rnd, self.name):
            return {**config, "seed": task_seed(self.seed, rnd, self.cid)}
        return config

    def fit_task(self, ins: FitIns) -> FitRes:
        return super().fit_task(dataclasses.replace(ins, config=self._config(ins.config)))

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return super().evaluate(parameters, self._config(config))


def _checkable(cfg: RunConfig) -> bool:
    """Whether a task's parameters are the plain model of a fixed layout (not a compressed broadcast, HE
    ciphertexts, or a tree ensemble, which grows and whose client checks what it receives itself)."""
    from fedloom.app.tabular import model_family

    return not cfg.communication.compress_broadcast and not cfg.encryption.he and model_family(cfg) != "xgboost"


class ModelCheck(ClientWrapper):
    """Stops a site whose data does not fit the server's model, with an error that says so.

    The first task's parameters are compared with the model this site built from its own data
    (names and shapes: the feature count sets the first layer, the label set the last); on a
    mismatch the task fails with the reason (the server logs it) and :attr:`error` is set, which
    ends :func:`run_client` with a :class:`~fedloom.errors.ConfigError`.
    """

    def __init__(self, inner: Client, local: Parameters, what: str, *, active: bool = True) -> None:
        super().__init__(inner)
        self.local, self.what, self.active = local.spec(), what, active
        self.error: ConfigError | None = None
        self.on_error: Callable[[], None] = lambda: None

    def _check(self, parameters: Parameters) -> None:
        if not self.active:
            return
        remote = parameters.spec()
        if remote == self.local:
            self.active = False  # checked once: the model's form does not change
            return
        diff = [f"{k}: server {tuple(remote[k].shape) if k in remote else 'absent'}, "
                f"here {tuple(self.local[k].shape) if k in self.local else 'absent'}"
                for k in sorted(set(remote) | set(self.local)) if remote.get(k) != self.local.get(k)]
        self.error = ConfigError(
            f"this site's data does not fit the server's model: {self.what}, and the arrays differ "
            f"({'; '.join(diff[:4])}). Give the site the feature columns and the labels of the shared config's "
            "dataset")
        self.on_error()
        raise self.error

    def fit_task(self, ins: FitIns) -> FitRes:
        self._check(ins.parameters)
        return super().fit_task(ins)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        self._check(parameters)
        return super().evaluate(parameters, config)


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
        _limit_threads(cfg, ccfg.threads)
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
    if isinstance(client, ModelCheck):
        client.on_error = runtime.stop
    reason = runtime.run()
    if isinstance(client, ModelCheck) and client.error is not None:
        raise client.error
    return reason


def _limit_threads(cfg: RunConfig, threads: int) -> None:
    """``[client] threads``: torch's intra-op threads for torch models; a scikit-learn or XGBoost client
    does not import torch (XGBoost runs with ``nthread=1``, scikit-learn's solvers single-threaded)."""
    from fedloom.app.tabular import model_family

    if model_family(cfg) == "torch":
        import torch

        torch.set_num_threads(threads)
