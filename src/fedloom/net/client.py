"""The deployed client runtime: dial out to the server, run tasks with any :class:`fedloom.Client`.

The client opens one ``Connect`` stream (it needs no inbound port, so it can sit behind NAT),
sends a heartbeat every few seconds, runs each task it receives with the same ``Client`` object
used in simulation, and streams back the result. When the connection breaks (server restart,
network loss, a server that went silent) it reconnects with exponential backoff and full jitter;
it stops when the server says goodbye, or raises :class:`~fedloom.net.auth.AuthError` at once when
the server refuses its credentials (retrying cannot help).

A connection that fails before the server's Welcome is diagnosed (:mod:`fedloom.net.diagnose`):
a certificate the server's TLS handshake refuses raises :class:`~fedloom.net.auth.AuthError`, TLS
against a plaintext server (or the reverse) :class:`ConnectFailed`, both at once; an address where
nothing answers is retried with backoff for ``connect_timeout_s``, then raises :class:`NoServer`.

Example (against a running server)::

    runtime = ClientRuntime(my_client, server="fl.example.org:8443",
                            credentials=channel_credentials(ca_cert="ca.pem"), token=open("token").read())
    runtime.run()
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from fedloom.core.client import Client
from fedloom.core.types import EvaluateIns, FitIns, FitRes
from fedloom.errors import ConfigError, FedloomError, ValidationError
from fedloom.net import wire
from fedloom.net.auth import CLAIMED_NAME_KEY, AuthError
from fedloom.net.chunking import Assembler
from fedloom.net.diagnose import TlsFiles, diagnose
from fedloom.net.messages import decode_message as _decode
from fedloom.net.messages import encode_error, encode_message
from fedloom.net.proto import fedloom_pb2 as pb
from fedloom.net.server import PROTOCOL_VERSION, SERVICE

__all__ = ["ClientRuntime", "ConnectFailed", "NoServer", "channel_credentials", "backoff_delay",
           "no_credentials_message"]

log = logging.getLogger(__name__)

_REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
_FILES_ATTR = "_fedloom_tls_files"  # the PEM files behind credentials made by channel_credentials


class ConnectFailed(FedloomError):
    """The client cannot talk to the server as configured (TLS against plaintext, an untrusted server)."""

    exit_code = 4
    """Exit status of ``fedloom client``."""


class NoServer(ConnectFailed, ConnectionError):
    """Nothing answered at the server's address for ``connect_timeout_s``."""

    exit_code = 5


def no_credentials_message(name: str, folder: str | Path) -> str:
    """What to say when client ``name`` has no credentials folder (never: connect without TLS)."""
    return (f"no credentials for client {name!r}: expected the folder {folder} (from the [client] credentials "
            f"setting or --credentials). Create it on the server's machine with `fedloom certs --out creds --clients "
            f"{name}` (add {name!r} to the existing names) and copy creds/clients/{name}/ here, or check --name")


def channel_credentials(*, ca_cert: str | Path, client_cert: str | Path | None = None,
                        client_key: str | Path | None = None) -> grpc.ChannelCredentials:
    """TLS credentials trusting ``ca_cert``; with a client certificate and key for mTLS."""
    def read(p: str | Path | None) -> bytes | None:
        if not p:
            return None
        try:
            return Path(p).read_bytes()
        except FileNotFoundError as exc:
            raise ConfigError(f"credential file {p} does not exist") from exc

    creds = grpc.ssl_channel_credentials(read(ca_cert), read(client_key), read(client_cert))
    setattr(creds, _FILES_ATTR, TlsFiles(ca_cert, client_cert or None, client_key or None))  # noqa: B010
    return creds


def backoff_delay(attempt: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in ``[d/2, d]`` for ``d = min(maximum, initial * 2**attempt)``."""
    d = min(maximum, initial * (2 ** min(attempt, 30)))
    return rng.uniform(d / 2, d)


class _Connection:
    """One live stream: an outbound queue the request generator drains."""

    def __init__(self) -> None:
        self.out: queue.Queue[Any] = queue.Queue()
        self.closed = threading.Event()

    def requests(self) -> Iterator[pb.ClientMessage]:
        yield pb.ClientMessage(hello=pb.Hello(protocol_version=PROTOCOL_VERSION))
        while True:
            item = self.out.get()
            if item is None:
                return
            yield from item

    def stop(self) -> None:
        self.closed.set()
        self.out.put(None)


class ClientRuntime:
    """Connect a :class:`~fedloom.Client` to a fedloom server and serve its tasks until told to stop.

    Args:
        client: The client code (a :class:`~fedloom.TorchClient` or any ``Client``); one object for the
            whole run, so client-side state persists across rounds.
        server: ``HOST:PORT``.
        credentials: TLS channel credentials (see :func:`channel_credentials`); ``None`` = plaintext.
        token: Per-client token, sent as ``authorization: Bearer``; only over TLS (with no
            ``credentials`` a token is refused with a :class:`ConfigError`).
        name: Identity claimed: the identity when the server runs without authentication; otherwise
            the server refuses it unless it matches what the credentials prove.
        heartbeat_s: Heartbeat interval.
        server_timeout_s: Reconnect when the server sends nothing (not even a heartbeat) this long.
        backoff_initial_s: First reconnect delay; doubles per failed attempt, with jitter.
        backoff_max_s: Longest reconnect delay.
        give_up_after_s: Stop reconnecting after this long without a connection (0: never).
        connect_timeout_s: Stop with :class:`NoServer` when nothing has answered at ``server`` for this
            long (at the start, or since the last connection; 0: never).
        max_message_bytes: Largest task payload accepted.
        chunk_bytes: Data frame size for results.
        server_name_override: TLS name to verify instead of the host in ``server`` (testing, tunnels).
        receipts: A :class:`~fedloom.ledger.receipts.ReceiptBook`: the ledger receipt that comes with a
            task is checked and stored, and each update sent is remembered for the next receipt.
    """

    def __init__(
        self,
        client: Client,
        *,
        server: str,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        name: str | None = None,
        heartbeat_s: float = 5.0,
        server_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        give_up_after_s: float = 0.0,
        connect_timeout_s: float = 300.0,
        max_message_bytes: int = 2 << 30,
        chunk_bytes: int = 2 << 20,
        server_name_override: str | None = None,
        seed: int | None = None,
        receipts: Any = None,
    ) -> None:
        self.client = client
        self.receipts = receipts  # a fedloom.ledger.receipts.ReceiptBook: checks and keeps the ledger's receipts
        self.server = server
        self.credentials = credentials
        self.metadata: list[tuple[str, str]] = []
        if token and credentials is None:
            raise ConfigError("refusing to send the token over a plaintext channel (no TLS credentials): anyone on "
                              "the path could read it and join as this client; connect with TLS")
        if token:
            self.metadata.append(("authorization", f"Bearer {token.strip()}"))
        if name:
            self.metadata.append((CLAIMED_NAME_KEY, name))
        self.heartbeat_s = heartbeat_s
        self.server_timeout_s = server_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.give_up_after_s = give_up_after_s
        self.connect_timeout_s = connect_timeout_s
        self.tls_files: TlsFiles | None = getattr(credentials, _FILES_ATTR, None)
        self._failure: grpc.StatusCode | None = None  # how the last connection ended before a Welcome
        self.max_message_bytes = max_message_bytes
        self.chunk_bytes = chunk_bytes
        self.server_name_override = server_name_override
        self.rng = random.Random(seed)
        self.identity: str | None = None
        self.tasks_done = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return (from another thread)."""
        self._stop.set()

    def run(self) -> str:
        """Serve tasks, reconnecting as needed; returns the server's goodbye reason."""
        attempt = 0
        last_ok = last_answer = time.monotonic()
        while not self._stop.is_set():
            self._failure = None
            reason, welcomed = self._session()
            if reason is not None:
                return reason
            now = time.monotonic()
            if welcomed:
                attempt, last_ok, last_answer = 0, now, now
            elif self._failure in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
                found = diagnose(self.server, tls=self.credentials is not None, files=self.tls_files,
                                 server_name=self.server_name_override)
                if found is not None and found.kind == "certificate_refused":
                    raise AuthError(grpc.StatusCode.UNAUTHENTICATED, found.message)
                if found is not None and found.fatal:
                    raise ConnectFailed(found.message)
                if found is None:
                    last_answer = now
                elif self.connect_timeout_s and now - last_answer > self.connect_timeout_s:
                    raise NoServer(f"{found.message}: nothing answered for {self.connect_timeout_s:.0f}s "
                                   "(connect_timeout_s); check the address and that `fedloom server` runs there")
                else:
                    log.info("%s; retrying", found.message)
            if self.give_up_after_s and time.monotonic() - last_ok > self.give_up_after_s:
                raise ConnectionError(f"no connection to {self.server} for {self.give_up_after_s:.0f}s; giving up")
            delay = backoff_delay(attempt, initial=self.backoff_initial_s, maximum=self.backoff_max_s, rng=self.rng)
            attempt += 1
            log.info("reconnecting to %s in %.1fs", self.server, delay)
            self._stop.wait(delay)
        return "stopped"

    def _channel(self) -> grpc.Channel:
        limit = self.chunk_bytes + (1 << 20)
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max(limit, (2 << 20) + (1 << 20))),
            ("grpc.max_send_message_length", limit),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            *wire.stream_options(self.chunk_bytes),
        ]
        if self.server_name_override:
            options.append(("grpc.ssl_target_name_override", self.server_name_override))
        if self.credentials is None:
            return grpc.insecure_channel(self.server, options=options)
        return grpc.secure_channel(self.server, self.credentials, options=options)

    def _session(self) -> tuple[str | None, bool]:
        """One connection; returns ``(goodbye reason or None, whether the server welcomed us)``."""
        conn = _Connection()
        welcomed = False
        last_heard = [time.monotonic()]
        with self._channel() as channel:
            connect = channel.stream_stream(f"/{SERVICE}/Connect", request_serializer=wire.serialize,
                                            response_deserializer=wire.parser(pb.ServerMessage))
            responses = connect(conn.requests(), metadata=self.metadata)
            watchdog = threading.Thread(target=self._watch, args=(conn, responses, last_heard), daemon=True)
            watchdog.start()
            assembler = Assembler(max_bytes=self.max_message_bytes)
            try:
                for msg in responses:
                    last_heard[0] = time.monotonic()
                    which = msg.WhichOneof("msg")
                    if which == "welcome":
                        welcomed = True
                        self.identity = msg.welcome.client_id
                        log.info("connected to %s as %s", self.server, self.identity)
                    elif which == "bye":
                        log.info("server said goodbye: %s", msg.bye.reason)
                        return msg.bye.reason, welcomed
                    elif which == "frame":
                        self._on_frame(msg.frame, assembler, conn, last_heard)
                    if self._stop.is_set():
                        return "stopped", welcomed
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code in _REFUSED:
                    raise AuthError(code, f"server refused this client: {exc.details()}") from None
                if not welcomed:
                    self._failure = code
                (log.warning if welcomed else log.info)("connection to %s lost: %s %s", self.server, code,
                                                        exc.details() if code else exc)
            finally:
                # Tear down in order before the channel closes: a gRPC stream or thread still alive at
                # interpreter exit can abort the process ("terminate called without an active exception").
                conn.stop()
                responses.cancel()
                watchdog.join(timeout=self.heartbeat_s + 1.0)
        return None, welcomed

    def _watch(self, conn: _Connection, responses: Any, last_heard: list[float]) -> None:
        """Send heartbeats; cancel the stream when the server has been silent too long."""
        while not conn.closed.is_set():
            if time.monotonic() - last_heard[0] > self.server_timeout_s:
                log.warning("server silent for %.0fs; reconnecting", self.server_timeout_s)
                responses.cancel()
                return
            conn.out.put([pb.ClientMessage(heartbeat=pb.Heartbeat(time=time.time()))])
            conn.closed.wait(self.heartbeat_s)

    def _on_frame(
        self, frame: pb.Frame | wire.DataFrame, assembler: Assembler, conn: _Connection, last_heard: list[float]
    ) -> None:
        task_id = frame.header.task_id if isinstance(frame, pb.Frame) and frame.HasField("header") else ""
        try:
            done = assembler.feed(frame)
        except ValidationError as exc:
            log.warning("refused a task: %s", exc)
            if task_id:
                conn.out.put(wire.envelope(pb.ClientMessage, f) for f in encode_error(task_id, f"refused: {exc}"))
            return
        if done is None:
            return
        task_id = done.header.task_id
        last_heard[0] = float("inf")  # busy training: the server's silence is ours, not a failure
        try:
            _, ins = _decode(done)
            frames = self._run_task(task_id, ins)
        except Exception as exc:  # the client's own failure is reported, not fatal
            log.warning("task failed: %s: %s", type(exc).__name__, exc)
            frames = encode_error(task_id, f"{type(exc).__name__}: {exc}")
        conn.out.put(wire.envelope(pb.ClientMessage, f) for f in frames)
        last_heard[0] = time.monotonic()  # time spent training is not the server's silence
        self.tasks_done += 1

    def _run_task(self, task_id: str, ins: Any) -> Iterator[pb.Frame | wire.DataFrame]:
        start = time.perf_counter()
        log.info("%s round %s started", "fit" if isinstance(ins, FitIns) else "evaluate", ins.config.get("round", "?"))
        if isinstance(ins, FitIns):
            receipt = ins.extras.pop("ledger_receipt", None)  # the ledger's, for this client's last update
            if receipt is not None and self.receipts is not None:
                self.receipts.receive(receipt)
            res: Any = self.client.fit_task(ins)
            if not isinstance(res, FitRes):
                raise ValidationError(f"fit must return FitRes, got {type(res).__name__}")
            if self.receipts is not None:
                self.receipts.record_sent(ins.config, res)
            what = "fit"
        elif isinstance(ins, EvaluateIns):
            res = self.client.evaluate(ins.parameters, ins.config)
            what = "evaluate"
        else:
            raise ValidationError(f"unexpected task {type(ins).__name__}")
        log.info("%s round %s done in %.2fs", what, ins.config.get("round", "?"), time.perf_counter() - start)
        return encode_message(task_id, res, chunk_bytes=self.chunk_bytes)
