"""Live status of a running server, for its operator: ``fedloom status`` and the status page.

A :class:`StatusBoard` is a round observer of the server's loop; with the pool's
:meth:`~fedloom.net.server.GrpcPool.snapshot` it answers "which clients are connected, when did each
last send anything, which round and stage is the run in, what were the last metrics and how much
privacy (epsilon) is spent". It is served two ways, both read-only and both behind the admin token
that ``fedloom certs`` issues (never a client's token):

- the ``FedloomAdmin.Status`` RPC on the server's own gRPC port (TLS, and mTLS where the server
  requires client certificates), queried by :func:`query_status` (``fedloom status``);
- an optional web page (:mod:`fedloom.net.status_page`).

Example:
    >>> board = StatusBoard(rounds=3, clients=lambda: [], min_clients=2)
    >>> board.status()["stage"], board.status()["round"]
    ('waiting for clients', 1)
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from fedloom.engine.loop import RoundRecord
from fedloom.errors import ConfigError, FedloomError
from fedloom.net.auth import AuthError
from fedloom.net.certs import hash_token
from fedloom.net.proto import fedloom_pb2 as pb

__all__ = ["StatusBoard", "AdminAuth", "ADMIN_SERVICE", "status_service", "query_status", "format_status",
           "reply_to_dict"]

ADMIN_SERVICE = "fedloom.net.FedloomAdmin"
_HISTORY_KEYS = ("accuracy", "loss", "fed_accuracy", "fed_loss", "epsilon")


class StatusBoard:
    """What a running server shows its operator; a round observer (thread-safe).

    Args:
        rounds: Rounds planned.
        clients: Returns the connected clients (:meth:`GrpcPool.snapshot`'s rows).
        min_clients: Clients needed to start a round.
    """

    def __init__(self, *, rounds: int, clients: Callable[[], list[dict[str, Any]]], min_clients: int) -> None:
        self.rounds = rounds
        self.clients = clients
        self.min_clients = min_clients
        self._lock = threading.Lock()
        self._history: list[RoundRecord] = []
        self._finished: str | None = None
        self._started = time.monotonic()

    def on_round_end(self, record: RoundRecord, state: object) -> None:
        """Record a completed round (the loop calls this)."""
        with self._lock:
            self._history = [h for h in self._history if h.round < record.round] + [record]

    def restore(self, history: list[RoundRecord]) -> None:
        """Start from the rounds of a resumed run's checkpoint."""
        with self._lock:
            self._history = list(history)

    def finish(self, reason: str = "finished") -> None:
        """Mark the run as over (the stage then reads ``reason``)."""
        with self._lock:
            self._finished = reason

    def status(self) -> dict[str, Any]:
        """The current status as plain JSON-able values."""
        clients = self.clients()
        with self._lock:
            history = list(self._history)
            finished = self._finished
        completed = history[-1].round if history else 0
        if finished is not None:
            stage = finished
        elif any(c["stage"] == "training" for c in clients):
            stage = "training"
        elif any(c["stage"] == "evaluating" for c in clients):
            stage = "evaluating"
        elif len(clients) < self.min_clients:
            stage = "waiting for clients"
        else:
            stage = "aggregating"
        last = dict(history[-1].metrics) if history else {}
        epsilon = next((h.metrics["epsilon"] for h in reversed(history) if "epsilon" in h.metrics), None)
        return {
            "round": completed if finished is not None else min(completed + 1, self.rounds),
            "rounds": self.rounds,
            "completed_rounds": completed,
            "stage": stage,
            "clients": clients,
            "min_clients": self.min_clients,
            "metrics": last,
            "epsilon": epsilon,
            "history": [{"round": h.round, **{k: v for k, v in h.metrics.items() if k in _HISTORY_KEYS}}
                        for h in history],
            "uptime_s": time.monotonic() - self._started,
        }

    def reply(self) -> pb.StatusReply:
        """:meth:`status` as the ``StatusReply`` message."""
        st = self.status()
        reply = pb.StatusReply(
            round=st["round"], rounds=st["rounds"], completed_rounds=st["completed_rounds"], stage=st["stage"],
            uptime_s=st["uptime_s"], min_clients=st["min_clients"],
            clients=[pb.ClientStatus(**c) for c in st["clients"]],
            metrics={k: v for k, v in st["metrics"].items() if math.isfinite(v)},
            history=[pb.RoundMetrics(round=h["round"], metrics={k: v for k, v in h.items() if k != "round"})
                     for h in st["history"]],
        )
        if st["epsilon"] is not None:
            reply.epsilon = st["epsilon"]
        return reply


class AdminAuth:
    """Checks the admin token (``authorization: Bearer <token>``) against its SHA-256.

    Args:
        token_hash: Hex SHA-256 of the admin token (``admin.sha256`` of ``fedloom certs``); ``None`` when
            the server has none: then every request is refused, saying how to create one.
        plaintext: The server has no TLS (``--insecure``): every request is refused, since the token
            would cross the network in plaintext.
    """

    def __init__(self, token_hash: str | None, *, plaintext: bool = False) -> None:
        self.token_hash = token_hash.strip() if token_hash else None
        self.plaintext = plaintext

    @classmethod
    def from_file(cls, path: str | Path | None) -> AdminAuth:
        """Read the hash written by ``fedloom certs`` (a missing ``path``: no admin token)."""
        if not path:
            return cls(None)
        try:
            text = Path(path).read_text().strip()
        except FileNotFoundError as exc:
            raise ConfigError(f"admin token hash {path} does not exist (create it with `fedloom certs`)") from exc
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise ConfigError(f"{path} must hold the hex SHA-256 of the admin token, as `fedloom certs` writes it")
        return cls(text)

    def check(self, authorization: str) -> None:
        """Raise :class:`~fedloom.net.auth.AuthError` unless ``authorization`` carries the admin token."""
        if self.plaintext:
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                            "this server runs without TLS (--insecure): the status service needs TLS, so that the "
                            "admin token never travels in plaintext (the status page on 127.0.0.1 still works)")
        if self.token_hash is None:
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                            "this server has no admin token: create credentials with `fedloom certs` (it writes "
                            "admin.sha256) and restart the server with [server] credentials or admin_token_hash")
        if not authorization.startswith("Bearer ") or len(authorization) <= len("Bearer "):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            "missing admin token: pass the admin/ folder of `fedloom certs` (its file token)")
        if not hmac.compare_digest(hash_token(authorization[len("Bearer "):].strip()), self.token_hash):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            "wrong admin token (a client's token is not an admin token): use the token in the "
                            "admin/ folder that `fedloom certs` wrote with this server's credentials")


def status_service(board: StatusBoard, auth: AdminAuth) -> grpc.GenericRpcHandler:
    """The ``FedloomAdmin`` service answering ``Status`` from ``board`` to admin-token holders."""

    def status(request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusReply:
        metadata: Mapping[str, Any] = dict(context.invocation_metadata() or ())
        try:
            auth.check(str(metadata.get("authorization", "")))
        except AuthError as exc:
            context.abort(exc.code, str(exc))
        return board.reply()

    handler = grpc.unary_unary_rpc_method_handler(
        status, request_deserializer=pb.StatusRequest.FromString,
        response_serializer=pb.StatusReply.SerializeToString)
    return grpc.method_handlers_generic_handler(ADMIN_SERVICE, {"Status": handler})


def query_status(server: str, *, token: str | None, credentials: grpc.ChannelCredentials | None,
                 timeout_s: float = 10.0) -> pb.StatusReply:
    """Ask the server at ``server`` (``HOST:PORT``) for its status.

    Args:
        server: ``HOST:PORT``.
        token: The admin token (``None``: send none; the server refuses).
        credentials: TLS channel credentials (``None``: plaintext).
        timeout_s: Deadline of the call.

    Raises:
        FedloomError: refused (wrong or missing admin token), no server there, or no status service;
            the message says which and what to do.
    """
    channel = (grpc.insecure_channel(server) if credentials is None
               else grpc.secure_channel(server, credentials))
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        call = channel.unary_unary(f"/{ADMIN_SERVICE}/Status", request_serializer=pb.StatusRequest.SerializeToString,
                                   response_deserializer=pb.StatusReply.FromString)
        return call(pb.StatusRequest(), metadata=metadata, timeout=timeout_s)
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details()  # type: ignore[attr-defined]
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise FedloomError(f"the server at {server} refused the status request: {details}") from exc
        if code == grpc.StatusCode.UNIMPLEMENTED:
            raise FedloomError(f"the server at {server} has no status service (an older fedloom?)") from exc
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise FedloomError(f"no fedloom server answered at {server} within {timeout_s:g}s ({details}); check "
                               "the address, and that the CA (and client certificate, if the server requires "
                               "one) are this deployment's") from exc
        raise FedloomError(f"status request to {server} failed: {code.name}: {details}") from exc
    finally:
        channel.close()


def reply_to_dict(reply: pb.StatusReply) -> dict[str, Any]:
    """A ``StatusReply`` as the same plain dict :meth:`StatusBoard.status` returns."""
    return {
        "round": reply.round, "rounds": reply.rounds, "completed_rounds": reply.completed_rounds,
        "stage": reply.stage, "min_clients": reply.min_clients, "uptime_s": reply.uptime_s,
        "clients": [{"name": c.name, "stage": c.stage, "last_heartbeat_s": c.last_heartbeat_s,
                     "connected_s": c.connected_s} for c in reply.clients],
        "metrics": dict(reply.metrics),
        "epsilon": reply.epsilon if reply.HasField("epsilon") else None,
        "history": [{"round": h.round, **dict(h.metrics)} for h in reply.history],
    }


_SHOWN = ("accuracy", "loss", "fed_accuracy", "fed_loss", "train_loss", "fit_clients", "fit_failures",
          "bytes_up", "bytes_down", "wall_s")


def format_status(st: Mapping[str, Any], server: str = "") -> str:
    """The text ``fedloom status`` prints for a status dict."""
    where = f"server {server}: " if server else ""
    lines = [f"{where}round {st['round']} of {st['rounds']} ({st['completed_rounds']} completed), "
             f"stage: {st['stage']}, up {st['uptime_s']:.0f}s"]
    metrics = st["metrics"]
    if metrics:
        shown = [f"{k} {_num(metrics[k])}" for k in _SHOWN if k in metrics]
        lines.append(f"last metrics (round {st['completed_rounds']}): " + ", ".join(shown))
    else:
        lines.append("last metrics: none yet (no round completed)")
    lines.append(f"epsilon spent: {st['epsilon']:.4f}" if st["epsilon"] is not None
                 else "epsilon spent: n/a (no differential privacy)")
    clients = st["clients"]
    lines.append(f"clients: {len(clients)} connected ({st['min_clients']} needed to start a round)")
    if clients:
        width = max(len("name"), *(len(c["name"]) for c in clients))
        lines.append(f"  {'name':<{width}}  {'stage':<10}  {'last heartbeat':>14}  {'connected':>9}")
        for c in clients:
            lines.append(f"  {c['name']:<{width}}  {c['stage']:<10}  {c['last_heartbeat_s']:>10.1f}s ago"
                         f"  {c['connected_s']:>8.0f}s")
    return "\n".join(lines)


def _num(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) >= 1:
        return f"{int(v):,}"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4f}"
