"""The deployment server: a gRPC service clients dial into, and a :class:`GrpcPool` over it.

Each client holds one bidirectional ``Connect`` stream (it dials out; the server never dials
anyone). The server pushes tasks down that stream and reads results, heartbeats and errors from it.
:class:`GrpcPool` implements the :class:`~fedloom.core.pool.ClientPool` protocol, so the
ordinary :class:`~fedloom.engine.loop.FederatedLoop` drives a deployment exactly as it drives a
simulation: same strategy code, same validation, same checkpoints.

Faults become per-client failures, never crashes: a client that disconnects, stops sending
heartbeats or misses the deadline fails its task for that round; a result arriving after its
deadline is discarded (its task id is no longer pending); a result whose header declares more bytes
than allowed, or arrays whose names/shapes/dtypes differ from the global model, is rejected before
its payload is read, and the reason is logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from fedloom.core.parameters import ParamSpec
from fedloom.core.pool import PoolResult
from fedloom.core.strategy import Failure
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes
from fedloom.errors import ConfigError, RoundFailedError, ValidationError
from fedloom.net import wire
from fedloom.net.auth import Authenticator, AuthError
from fedloom.net.chunking import Assembler, MessageTooLarge
from fedloom.net.messages import RemoteError, decode_message, encode_message
from fedloom.net.proto import fedloom_pb2 as pb

__all__ = ["GrpcPool", "PROTOCOL_VERSION", "check_header_spec", "natural_key"]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
SERVICE = "fedloom.net.Fedloom"  # the service of fedloom.proto; messages go through fedloom.net.wire
_CLOSE = object()  # sentinel in a session's outbound queue


def natural_key(cid: str) -> tuple[int, int, str]:
    """Sort ``"2"`` before ``"10"`` (numeric names by value, then other names alphabetically)."""
    return (0, int(cid), cid) if cid.isdigit() else (1, 0, cid)


def check_header_spec(header: pb.Header, expected: ParamSpec) -> None:
    """Reject a fit result whose parameters' names, shapes or dtypes differ from ``expected``."""
    params = next((g for g in header.groups if g.key == ""), None)
    if params is None:
        raise ValidationError("update has no parameters")
    names = [a.name for a in params.arrays]
    if names != list(expected):
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        raise ValidationError(f"update has wrong names: missing {missing}, unexpected {extra}")
    for meta in params.arrays:
        spec = expected[meta.name]
        if tuple(meta.shape) != spec.shape:
            raise ValidationError(f"{meta.name!r}: shape {tuple(meta.shape)} != expected {spec.shape}")
        if meta.dtype != spec.dtype:
            raise ValidationError(f"{meta.name!r}: dtype {meta.dtype} != expected {spec.dtype}")


@dataclass
class _Pending:
    task_id: str
    kind: int  # pb.FIT_INS or pb.EVALUATE_INS
    expected: ParamSpec | None
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    failure: str | None = None
    bytes_up: int = 0

    def fail(self, reason: str) -> None:
        if not self.done.is_set():
            self.failure = reason
            self.done.set()


class _Session:
    """One connected client: its outbound queue, pending tasks and inbound reassembly."""

    def __init__(self, cid: ClientId, pool: GrpcPool) -> None:
        self.cid = cid
        self.pool = pool
        self.id = uuid.uuid4().hex[:8]
        self.out: queue.Queue[Any] = queue.Queue()
        self.pending: dict[str, _Pending] = {}
        self.lock = threading.Lock()
        self.last_seen = time.monotonic()
        self.connected_at = self.last_seen
        self.closed = threading.Event()
        self.finished = threading.Event()  # the response stream has ended
        self.close_status: tuple[grpc.StatusCode, str] | None = None
        self.assembler = Assembler(max_bytes=pool.max_message_bytes, check_header=self._check_header)

    # -- outbound ----------------------------------------------------------------------
    def submit(self, kind: int, ins: FitIns | EvaluateIns, expected: ParamSpec | None) -> _Pending:
        pending = _Pending(uuid.uuid4().hex, kind, expected)
        with self.lock:
            if self.closed.is_set():
                pending.fail("disconnected before the task was sent")
                return pending
            self.pending[pending.task_id] = pending
        frames = encode_message(pending.task_id, ins, chunk_bytes=self.pool.chunk_bytes)
        self.out.put(wire.envelope(pb.ServerMessage, f) for f in frames)
        return pending

    def cancel(self, task_id: str) -> None:
        with self.lock:
            self.pending.pop(task_id, None)

    def close(self, reason: str, status: tuple[grpc.StatusCode, str] | None = None) -> None:
        with self.lock:
            if self.closed.is_set():
                return
            self.closed.set()
            self.close_status = status
            pending, self.pending = list(self.pending.values()), {}
        for p in pending:
            p.fail(f"client {reason}")
        self.out.put(_CLOSE)
        self.pool._forget(self)

    # -- inbound -----------------------------------------------------------------------
    def _check_header(self, header: pb.Header) -> None:
        with self.lock:
            pending = self.pending.get(header.task_id)
        if pending is None:
            raise _Late(f"late or unknown result for task {header.task_id[:8]} discarded")
        want = pb.FIT_RES if pending.kind == pb.FIT_INS else pb.EVALUATE_RES
        if header.kind not in (want, pb.ERROR):
            raise ValidationError(f"expected a {pb.Kind.Name(want)}, got {pb.Kind.Name(header.kind)}")
        if header.kind == pb.FIT_RES and pending.expected is not None:
            check_header_spec(header, pending.expected)

    def _take(self, task_id: str) -> _Pending | None:
        with self.lock:
            return self.pending.pop(task_id, None)

    def on_frame(self, frame: pb.Frame | wire.DataFrame) -> None:
        task_id = frame.header.task_id if isinstance(frame, pb.Frame) and frame.HasField("header") else None
        try:
            done = self.assembler.feed(frame)
        except _Late as exc:
            log.info("client %s: %s", self.cid, exc)
            return
        except MessageTooLarge as exc:
            log.warning("client %s: rejected oversized message: %s", self.cid, exc)
            if task_id and (p := self._take(task_id)):
                p.fail(f"rejected: {exc}")
            self.close("sent an oversized message", (grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)))
            return
        except ValidationError as exc:
            log.warning("client %s: rejected message: %s", self.cid, exc)
            if task_id and (p := self._take(task_id)):
                p.fail(f"rejected: {exc}")
            elif not task_id:  # a corrupt data stream: we cannot resynchronise
                self.close("sent a malformed stream", (grpc.StatusCode.INVALID_ARGUMENT, str(exc)))
            return
        if done is None:
            return
        pending = self._take(done.header.task_id)
        if pending is None:
            log.info("client %s: late result for task %s discarded", self.cid, done.header.task_id[:8])
            return
        try:
            _, message = decode_message(done)
        except ValidationError as exc:
            log.warning("client %s: rejected message: %s", self.cid, exc)
            pending.fail(f"rejected: {exc}")
            return
        if isinstance(message, RemoteError):
            pending.fail(f"client error: {message.error}")
            return
        pending.bytes_up = done.nbytes
        pending.result = message
        pending.done.set()


class _Late(ValidationError):
    pass


class _Servicer:
    def __init__(self, pool: GrpcPool) -> None:
        self.pool = pool

    def Connect(self, request_iterator: Iterator[pb.ClientMessage], context: grpc.ServicerContext):  # noqa: N802, ANN201
        pool = self.pool
        try:
            cid = pool.authenticator.identify_context(context)
        except AuthError as exc:
            log.warning("refused a connection from %s: %s", context.peer(), exc)
            context.abort(exc.code, str(exc))
        try:
            first = next(request_iterator)
        except (StopIteration, grpc.RpcError):
            return
        if first.WhichOneof("msg") != "hello" or first.hello.protocol_version != PROTOCOL_VERSION:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"expected hello with protocol version {PROTOCOL_VERSION}")
        session = _Session(cid, pool)
        pool._register(session)
        context.add_callback(lambda: session.close("disconnected"))
        reader = threading.Thread(target=self._read, args=(session, request_iterator), daemon=True,
                                  name=f"fedloom-read-{cid}")
        reader.start()
        try:
            yield pb.ServerMessage(welcome=pb.Welcome(client_id=cid, heartbeat_s=pool.heartbeat_s))
            yield from self._send(session)
        finally:
            session.finished.set()
        if session.close_status is not None:
            context.abort(*session.close_status)

    def _send(self, session: _Session) -> Iterator[pb.ServerMessage]:
        pool, cid = self.pool, session.cid
        while True:
            try:
                item = session.out.get(timeout=pool.heartbeat_s)
            except queue.Empty:
                if time.monotonic() - session.last_seen > pool.heartbeat_timeout_s:
                    log.warning("client %s: no heartbeat for %.0fs, dropping it", cid, pool.heartbeat_timeout_s)
                    session.close("stopped sending heartbeats")
                    break
                yield pb.ServerMessage(heartbeat=pb.Heartbeat(time=time.time()))
                continue
            if item is _CLOSE:
                break
            yield from item

    def _read(self, session: _Session, request_iterator: Iterator[pb.ClientMessage]) -> None:
        try:
            for msg in request_iterator:
                session.last_seen = time.monotonic()
                which = msg.WhichOneof("msg")
                if which == "frame":
                    session.on_frame(msg.frame)
                if session.closed.is_set():
                    break
        except grpc.RpcError:
            pass
        except Exception as exc:  # never let one client's bytes take the server down
            log.warning("client %s: stream error: %s", session.cid, exc)
        session.close("disconnected")


class GrpcPool:
    """A :class:`~fedloom.core.pool.ClientPool` whose clients are remote processes.

    Args:
        address: ``HOST:PORT`` to listen on (port 0 picks a free one; see :attr:`port`).
        authenticator: Who may connect.
        server_credentials: TLS credentials; ``None`` serves plaintext (local experiments only: then the
            authenticator must check no credential, since tokens would travel in plaintext).
        min_clients: :meth:`available` waits (up to ``wait_clients_s``) until this many are connected.
        wait_clients_s: How long :meth:`available` waits for ``min_clients``.
        max_message_bytes: Largest result payload accepted from a client.
        chunk_bytes: Data frame size for outbound tasks.
        heartbeat_s: Heartbeat interval the server sends and expects.
        heartbeat_timeout_s: A client silent this long is dropped.
        max_clients: Concurrent connections served.
    """

    def __init__(
        self,
        *,
        address: str,
        authenticator: Authenticator,
        server_credentials: grpc.ServerCredentials | None = None,
        min_clients: int = 1,
        wait_clients_s: float = 600.0,
        max_message_bytes: int = 2 << 30,
        chunk_bytes: int = 2 << 20,
        heartbeat_s: float = 5.0,
        heartbeat_timeout_s: float = 30.0,
        max_clients: int = 512,
    ) -> None:
        if server_credentials is None and (authenticator.use_tokens or authenticator.require_cert):
            raise ConfigError("a plaintext server (no TLS) cannot authenticate clients: tokens would travel in "
                              "plaintext and client certificates need TLS; serve with server_credentials")
        self.authenticator = authenticator
        self.min_clients = min_clients
        self.wait_clients_s = wait_clients_s
        self.max_message_bytes = max_message_bytes
        self.chunk_bytes = chunk_bytes
        self.heartbeat_s = heartbeat_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._sessions: dict[ClientId, _Session] = {}
        self._cond = threading.Condition()
        frame_limit = chunk_bytes + (1 << 20)  # one frame: a chunk plus a header's worth
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2 * max_clients + 4, thread_name_prefix="fedloom-grpc"),
            maximum_concurrent_rpcs=max_clients,
            options=[
                ("grpc.max_receive_message_length", frame_limit),
                ("grpc.max_send_message_length", frame_limit),
                ("grpc.so_reuseport", 0),  # a port in use must fail loudly, not be shared
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        handler = grpc.stream_stream_rpc_method_handler(
            _Servicer(self).Connect,
            request_deserializer=wire.parser(pb.ClientMessage),
            response_serializer=wire.serialize,
        )
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Connect": handler}),))
        if server_credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, server_credentials)
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> GrpcPool:
        """Start serving (returns ``self``)."""
        self._server.start()
        self._started = True
        return self

    def close(self, reason: str = "training finished") -> None:
        """Tell every client ``reason`` (they exit) and stop serving."""
        with self._cond:
            sessions = list(self._sessions.values())
        for s in sessions:
            s.out.put([pb.ServerMessage(bye=pb.Bye(reason=reason))])
            s.out.put(_CLOSE)
        if self._started:
            deadline = time.monotonic() + 5.0
            for s in sessions:  # let the goodbyes reach the clients
                s.finished.wait(max(0.0, deadline - time.monotonic()))
            self._server.stop(grace=2.0).wait()
            self._started = False

    # -- sessions ----------------------------------------------------------------------
    def _register(self, session: _Session) -> None:
        with self._cond:
            old = self._sessions.get(session.cid)
            self._sessions[session.cid] = session
            self._cond.notify_all()
        if old is not None:
            log.info("client %s reconnected; closing its previous stream", session.cid)
            old.close("replaced by a new connection")
        log.info("client %s connected (%d connected)", session.cid, len(self._sessions))

    def _forget(self, session: _Session) -> None:
        with self._cond:
            if self._sessions.get(session.cid) is session:
                del self._sessions[session.cid]
                log.info("client %s left (%d connected)", session.cid, len(self._sessions))
            self._cond.notify_all()

    def connected(self) -> list[ClientId]:
        """Ids of the connected clients, sorted naturally."""
        with self._cond:
            return sorted(self._sessions, key=natural_key)

    def wait_for_clients(self, n: int, timeout: float | None = None) -> bool:
        """Block until ``n`` clients are connected; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._sessions) >= n, timeout=timeout)

    # -- ClientPool --------------------------------------------------------------------
    def available(self) -> list[ClientId]:
        """Connected clients, once at least ``min_clients`` are (waiting up to ``wait_clients_s``).

        Raises:
            RoundFailedError: fewer than ``min_clients`` connected in time (the server retries the round).
        """
        if not self.wait_for_clients(self.min_clients, self.wait_clients_s):
            raise RoundFailedError(f"only {len(self.connected())} of the {self.min_clients} clients needed to start "
                                   f"a round connected within {self.wait_clients_s:.0f}s")
        return self.connected()

    def fit(
        self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None, timeout: float | None
    ) -> PoolResult[FitRes]:
        return self._run(tasks, pb.FIT_INS, expected, timeout)

    def evaluate(
        self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *, timeout: float | None
    ) -> PoolResult[EvaluateRes]:
        return self._run(tasks, pb.EVALUATE_INS, None, timeout)

    def _run(self, tasks: Iterable[tuple[ClientId, Any]], kind: int, expected: ParamSpec | None,
             timeout: float | None) -> PoolResult[Any]:
        out: PoolResult[Any] = PoolResult()
        sent: list[tuple[ClientId, _Session | None, _Pending]] = []
        for cid, ins in tasks:
            with self._cond:
                session = self._sessions.get(cid)
            if session is None:
                p = _Pending("", kind, expected)
                p.fail("not connected")
                sent.append((cid, None, p))
                continue
            sent.append((cid, session, session.submit(kind, ins, expected)))
            out.stats.bytes_down += ins.parameters.nbytes + sum(e.nbytes for e in getattr(ins, "extras", {}).values())
        deadline = None if timeout is None else time.monotonic() + timeout
        for cid, session, pending in sent:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not pending.done.wait(remaining):
                assert session is not None
                session.cancel(pending.task_id)
                pending.fail(f"missed the {timeout:.1f}s deadline")
            if pending.failure is not None:
                log.warning("client %s failed: %s", cid, pending.failure)
                out.failures.append(Failure(cid, pending.failure))
            else:
                out.results.append((cid, pending.result))
                out.stats.bytes_up += pending.bytes_up
        return out

    # -- read-only status (fedloom.net.status) ------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """The connected clients, sorted naturally: ``name``, ``last_heartbeat_s`` (seconds since the
        client last sent anything), ``connected_s`` and ``stage`` (``idle``, ``training`` or
        ``evaluating``: the kind of task it has pending). Reads only; changes nothing."""
        now = time.monotonic()
        with self._cond:
            sessions = sorted(self._sessions.values(), key=lambda s: natural_key(s.cid))
        out = []
        for s in sessions:
            with s.lock:
                kinds = {p.kind for p in s.pending.values()}
            stage = "training" if pb.FIT_INS in kinds else "evaluating" if pb.EVALUATE_INS in kinds else "idle"
            out.append({"name": s.cid, "last_heartbeat_s": max(0.0, now - s.last_seen),
                        "connected_s": max(0.0, now - s.connected_at), "stage": stage})
        return out

    def add_service(self, *handlers: grpc.GenericRpcHandler) -> None:
        """Serve more gRPC services on this server's port (e.g. the admin status service); before :meth:`start`."""
        if self._started:
            raise RuntimeError("add services before start()")
        self._server.add_generic_rpc_handlers(handlers)
