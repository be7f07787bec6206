"""Typed configuration of a deployed server and client, loaded from TOML.

A deployment TOML holds the experiment (the same keys as ``fedloom run``: dataset, model,
strategy, rounds, seed, ...) plus a ``[server]`` and/or a ``[client]`` table::

    rounds = 3
    dataset = "digits"
    clients = 4

    [server]
    address = "0.0.0.0:8443"
    credentials = "creds"        # a `fedloom certs --out creds` directory
    min_clients_start = 4
    round_deadline_s = 60

    [client]
    credentials = "creds/clients/{name}"

Relative paths are relative to the TOML file. See docs/deployment.md for every key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedloom.app.config import RunConfig, config_from_mapping, read_toml
from fedloom.errors import ConfigError

__all__ = ["ServerConfig", "ClientConfig", "load_deployment"]

MB = 1024 * 1024

ALLOW_LIST_NEEDS_AUTH = (
    "allowed_clients needs an authenticator: tokens (tokens_file, or credentials = a `fedloom certs` directory) "
    "or client certificates (require_client_cert = true, over TLS); without one the names on the list are "
    "claims any client can make, and an impostor could take a listed client's place"
)


@dataclass
class ServerConfig:
    """How the server listens, whom it admits and how rounds tolerate faults."""

    address: str = "127.0.0.1:8443"
    min_clients_start: int = 0  # 0: RunConfig.clients
    min_clients_aggregate: int = 1
    round_deadline_s: float = 120.0
    wait_clients_s: float = 600.0
    max_round_retries: int = 3
    credentials: str = ""  # a `fedloom certs` directory: fills the four files below
    ca_cert: str = ""
    server_cert: str = ""
    server_key: str = ""
    tokens_file: str = ""
    require_client_cert: bool = False
    allowed_clients: list[str] = field(default_factory=list)  # empty: every authenticated identity; needs auth
    checkpoint_dir: str = "server_run"
    max_message_mb: float = 2048.0
    chunk_kb: int = 2048
    heartbeat_s: float = 5.0
    heartbeat_timeout_s: float = 30.0
    max_clients: int = 512
    client_auth: str = "auto"  # auto: mTLS when credentials holds client certificates; "mtls"; "token"
    hello_deadline_s: float = 10.0  # a stream must say Hello within this long
    max_streams_before_hello: int = 2  # per identity
    max_connects_per_minute: int = 60  # per identity
    max_update_ratio: float = 4.0  # fit result parameters, and extras, each up to this x the model's bytes + 1 MiB
    status_port: int = 0  # the read-only status web page (fedloom.net.status_page); 0: off
    status_host: str = "127.0.0.1"  # where the status page listens
    admin_token_hash: str = ""  # default: admin.sha256 of credentials (written by `fedloom certs`)
    mode: str = ""  # "sync" or "async" (docs/async.md); "": the experiment's own (its [asynchrony] mode)

    def validate(self) -> None:
        need = _need
        need(self.mode in ("", "sync", "async"), f"mode must be 'sync' or 'async', got {self.mode!r}")
        need(0 <= self.status_port <= 65535, f"status_port must be in [0, 65535] (0: off), got {self.status_port}")
        need(":" in self.address, f"address must be HOST:PORT, got {self.address!r}")
        need(self.min_clients_start >= 0, "min_clients_start must be >= 0")
        need(self.min_clients_aggregate >= 1, "min_clients_aggregate must be >= 1")
        need(self.round_deadline_s > 0, "round_deadline_s must be > 0")
        need(self.wait_clients_s > 0, "wait_clients_s must be > 0")
        need(self.max_message_mb > 0, "max_message_mb must be > 0")
        need(1 <= self.chunk_kb <= 3072, "chunk_kb must be in [1, 3072] (gRPC messages stay under 4 MB)")
        need(0 < self.heartbeat_s < self.heartbeat_timeout_s, "need 0 < heartbeat_s < heartbeat_timeout_s")
        need(self.max_clients >= 1, "max_clients must be >= 1")
        need(self.client_auth in ("auto", "mtls", "token"),
             f"client_auth must be 'auto', 'mtls' or 'token', got {self.client_auth!r}")
        need(self.hello_deadline_s > 0, "hello_deadline_s must be > 0")
        need(self.max_streams_before_hello >= 1, "max_streams_before_hello must be >= 1")
        need(self.max_connects_per_minute >= 1, "max_connects_per_minute must be >= 1")
        need(self.max_update_ratio > 0, "max_update_ratio must be > 0 (HE ciphertexts need about 40)")
        need(not self.allowed_clients or bool(self.tokens_file or self.credentials or self.require_client_cert),
             ALLOW_LIST_NEEDS_AUTH)

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * MB)


@dataclass
class ClientConfig:
    """Which client code runs, where the server is, and the credentials to present."""

    server: str = ""
    name: str = ""  # identity claimed without credentials; default index for the RunConfig client
    index: int = -1  # demo mode: which partition (default: partitions[name], else int(name))
    partitions: dict[str, int] = field(default_factory=dict)  # demo mode: client name -> partition index
    data: str = ""  # this site's own .csv/.npz (instead of a partition of the experiment's dataset)
    target_column: str = ""  # label column of `data` (default: the experiment's target_column)
    client_fn: str = ""  # "package.module:factory", called with the client name
    credentials: str = ""  # a `fedloom certs` clients/<name> directory ("{name}" is substituted)
    ca_cert: str = ""
    client_cert: str = ""
    client_key: str = ""
    token_file: str = ""
    heartbeat_s: float = 5.0
    server_timeout_s: float = 30.0  # no message from the server for this long: reconnect
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    give_up_after_s: float = 0.0  # 0: keep reconnecting forever
    connect_timeout_s: float = 300.0  # nothing answers at the address this long: "no fedloom server" (0: never)
    max_message_mb: float = 2048.0
    chunk_kb: int = 2048
    threads: int = 0  # torch threads (0: torch's default)

    def validate(self) -> None:
        need = _need
        need(self.backoff_initial_s > 0 and self.backoff_max_s >= self.backoff_initial_s,
             "need 0 < backoff_initial_s <= backoff_max_s")
        need(0 < self.heartbeat_s < self.server_timeout_s, "need 0 < heartbeat_s < server_timeout_s")
        need(self.max_message_mb > 0, "max_message_mb must be > 0")
        need(1 <= self.chunk_kb <= 3072, "chunk_kb must be in [1, 3072]")
        taken: dict[int, str] = {}
        for name, index in self.partitions.items():
            need(index not in taken, f"[client.partitions]: {taken.get(index)!r} and {name!r} both hold partition "
                                     f"{index}; give every client its own")
            taken[index] = name
        need(self.connect_timeout_s >= 0, "connect_timeout_s must be >= 0 (0: retry forever)")

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * MB)


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _build(kind: type, raw: dict[str, Any], source: str, base: Path) -> Any:
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {source}; valid keys: {sorted(fields)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = kind().__getattribute__(key)
        want = type(default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is dict:
            if not isinstance(value, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                      for v in value.values()):
                raise ConfigError(f"{source}: {key} must be a table of name = partition index (an integer >= 0), "
                                  f"got {value!r}")
        elif want is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{source}: {key} must be a list of strings, got {value!r}")
        elif not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise ConfigError(f"{source}: {key} must be {want.__name__}, got {value!r}")
        if key in _PATH_KEYS and value and not Path(value).is_absolute():
            value = str(base / value)
        values[key] = value
    obj = kind(**values)
    obj.validate()
    return obj


_PATH_KEYS = {"credentials", "ca_cert", "server_cert", "server_key", "tokens_file", "checkpoint_dir",
              "client_cert", "client_key", "token_file", "admin_token_hash", "data"}


def load_deployment(path: str | Path | None) -> tuple[RunConfig, ServerConfig, ClientConfig]:
    """Read a deployment TOML: the experiment (RunConfig keys) and its ``[server]``/``[client]`` tables."""
    if path is None:
        return RunConfig(), ServerConfig(), ClientConfig()
    path = Path(path)
    raw = read_toml(path)
    server_raw = raw.pop("server", {})
    client_raw = raw.pop("client", {})
    if not isinstance(server_raw, dict) or not isinstance(client_raw, dict):
        raise ConfigError(f"{path}: [server] and [client] must be tables")
    base = path.resolve().parent
    run = config_from_mapping(raw, str(path))
    server = _build(ServerConfig, server_raw, f"{path} [server]", base)
    if server.mode and server.mode != run.asynchrony.mode:  # [server] mode = "async": the rules see it
        run = run.replace(mode=server.mode)
        run.validate()
    return run, server, _build(ClientConfig, client_raw, f"{path} [client]", base)
