"""The deployment server: a gRPC service clients dial into, and a :class:`GrpcPool` over it.

Each client holds one bidirectional ``Connect`` stream (it dials out; the server never dials
anyone). The server pushes tasks down that stream and reads results, heartbeats and errors from it.
:class:`GrpcPool` implements the :class:`~fedloom.core.pool.ClientPool` protocol, so the
ordinary :class:`~fedloom.engine.loop.FederatedLoop` drives a deployment exactly as it drives a
simulation: same strategy code, same validation, same checkpoints.

Every stream is served by a coroutine on one asyncio event loop (grpc's ``grpc.aio`` API) in one
background thread (:mod:`fedloom.net.loop_thread`): a connected client costs a few objects, not a
thread, and one task sends the whole fleet's heartbeats. The round loop calls :meth:`GrpcPool.fit`
from its own thread, and several threads may call it at once.

Faults become per-client failures, never crashes: a client that disconnects, stops sending
heartbeats or misses the deadline fails its task for that round; a result arriving after its
deadline is discarded (its task id is no longer pending); a result whose header declares more bytes
than allowed, or arrays whose names/shapes/dtypes differ from the global model, is rejected before
its payload is read, and the reason is logged.

One client cannot block the others: a stream must say Hello within ``hello_deadline_s``, one
identity may hold only ``max_streams_before_hello`` streams that have not said Hello and make only
``max_connects_per_minute`` attempts (see :mod:`fedloom.net.admission`), and the server accepts
enough concurrent streams for every client plus those. Each result kind has its own size limit,
derived from the model it answers (see :func:`check_result_size`). Bytes that are not a valid
message never reach grpcio as an exception: the stream is closed with ``INVALID_ARGUMENT``, and
:meth:`GrpcPool.close` bounds every wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
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
from fedloom.net.admission import Admission, OncePer
from fedloom.net.auth import Authenticator, AuthError
from fedloom.net.chunking import Assembler, MessageTooLarge, group_sizes
from fedloom.net.loop_thread import LoopThread
from fedloom.net.messages import RemoteError, decode_message, encode_message
from fedloom.net.proto import fedloom_pb2 as pb

__all__ = ["GrpcPool", "PROTOCOL_VERSION", "check_header_spec", "check_result_size", "ensure_fd_limit", "natural_key"]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
SERVICE = "fedloom.net.Fedloom"  # the service of fedloom.proto; messages go through fedloom.net.wire
_CLOSE = object()  # sentinel in a session's outbound queue
SMALL_HEADER_BYTES = 64 * 1024
"""Largest header of an evaluation result or an error report (they carry no arrays)."""
RESULT_SLACK_BYTES = 1 << 20
"""Fixed allowance on top of the model-derived limits of a fit result (small models, codecs' scales)."""


FD_MARGIN = 256
"""File descriptors kept beyond one per client (listening socket, checkpoints, logs, the run's files)."""


def ensure_fd_limit(max_clients: int) -> str | None:
    """Raise this process's open-file limit so ``max_clients`` connections fit; the problem if they cannot.

    Each connected client holds one socket. The soft limit (``ulimit -n``, often 1024) is raised up to
    the hard limit when it is lower than ``max_clients`` + :data:`FD_MARGIN`; returns ``None`` when the
    connections fit, or what to do when the hard limit is too low (the server still starts).
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    need = max_clients + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    new = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if new > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    if soft >= need:
        return None
    return (f"max_clients = {max_clients} needs about {need} open files, but this process may open only {soft} "
            f"(ulimit -n; hard limit {hard}): connections beyond about {max(0, soft - FD_MARGIN)} clients will "
            "fail; raise the limit (ulimit -n, or LimitNOFILE= in a systemd unit) or lower [server] max_clients")


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


def check_result_size(header: pb.Header, *, model_bytes: int, ratio: float) -> None:
    """Refuse a result larger than its kind may be, before its payload is read.

    An evaluation result and an error report carry no arrays and a header of at most
    :data:`SMALL_HEADER_BYTES`. A fit result's parameters, and separately its extras (SCAFFOLD's
    control variate, SecAgg+ payloads, HE ciphertexts), may each be at most ``ratio`` times
    ``model_bytes`` (the global model the task carried) plus :data:`RESULT_SLACK_BYTES`.

    Raises:
        MessageTooLarge: the header declares more than its kind allows.
    """
    kind = pb.Kind.Name(header.kind) if header.kind in pb.Kind.values() else str(header.kind)
    if header.kind in (pb.EVALUATE_RES, pb.ERROR):
        if header.payload_size or any(g.arrays for g in header.groups):
            raise MessageTooLarge(f"a {kind} carries no arrays, but this one declares {header.payload_size} bytes")
        if header.ByteSize() > SMALL_HEADER_BYTES:
            raise MessageTooLarge(f"a {kind} header of {header.ByteSize()} bytes, more than the "
                                  f"{SMALL_HEADER_BYTES} allowed")
        return
    sizes = group_sizes(header)
    cap = int(ratio * model_bytes) + RESULT_SLACK_BYTES
    params, extras = sizes.get("", 0), sum(n for k, n in sizes.items() if k)
    for what, n in (("parameters", params), ("extras", extras)):
        if n > cap:
            raise MessageTooLarge(f"{kind} {what} of {n} bytes, more than the {cap} allowed ({ratio:g} x the model's "
                                  f"{model_bytes} bytes + {RESULT_SLACK_BYTES}; [server] max_update_ratio)")


@dataclass
class _Pending:
    task_id: str
    kind: int  # pb.FIT_INS or pb.EVALUATE_INS
    expected: ParamSpec | None
    model_bytes: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    failure: str | None = None
    bytes_up: int = 0

    def fail(self, reason: str) -> None:
        if not self.done.is_set():
            self.failure = reason
            self.done.set()


class _Session:
    """One connected client: its outbound queue (on the event loop), pending tasks and inbound reassembly.

    Created and read on the server's event loop; :meth:`submit`, :meth:`cancel` and :meth:`close` may be
    called from any thread (the pending table is guarded by a lock, the queue is fed through the loop).
    """

    def __init__(self, cid: ClientId, pool: GrpcPool, serial: int | None = None) -> None:
        self.cid = cid
        self.serial = serial  # of the client certificate, when it presented one
        self.pool = pool
        self.id = uuid.uuid4().hex[:8]
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.pending: dict[str, _Pending] = {}
        self.lock = threading.Lock()
        self.last_seen = time.monotonic()
        self.connected_at = self.last_seen
        self.next_beat = self.last_seen + pool.heartbeat_s
        self.closed = threading.Event()
        self.finished = threading.Event()  # the response stream has ended
        self.close_status: tuple[grpc.StatusCode, str] | None = None
        self.assembler = Assembler(max_bytes=pool.max_message_bytes, check_header=self._check_header)

    # -- outbound ----------------------------------------------------------------------
    def submit(self, kind: int, ins: FitIns | EvaluateIns, expected: ParamSpec | None) -> _Pending:
        pending = _Pending(uuid.uuid4().hex, kind, expected, ins.parameters.nbytes)
        with self.lock:
            if self.closed.is_set():
                pending.fail("disconnected before the task was sent")
                return pending
            self.pending[pending.task_id] = pending
        frames = encode_message(pending.task_id, ins, chunk_bytes=self.pool.chunk_bytes)
        if not self.pool._loop.post(self.out.put_nowait, (pending, frames)):
            self.cancel(pending.task_id)
            pending.fail("the server has stopped")
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
        self.pool._loop.post(self.out.put_nowait, _CLOSE)
        self.pool._forget(self)

    # -- inbound -----------------------------------------------------------------------
    def _check_header(self, header: pb.Header) -> None:
        with self.lock:
            pending = self.pending.get(header.task_id)
        if pending is None:
            raise _Late(f"late or unknown result for task {header.task_id[:8]} discarded")
        want = pb.FIT_RES if pending.kind == pb.FIT_INS else pb.EVALUATE_RES
        if header.kind not in (want, pb.ERROR):
            got = pb.Kind.Name(header.kind) if header.kind in pb.Kind.values() else str(header.kind)  # no ValueError
            raise ValidationError(f"expected a {pb.Kind.Name(want)}, got {got}")
        check_result_size(header, model_bytes=pending.model_bytes, ratio=self.pool.max_update_ratio)
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
    """The ``Connect`` handler: a coroutine per stream on the pool's event loop (no thread per client)."""

    def __init__(self, pool: GrpcPool) -> None:
        self.pool = pool

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        pool = self.pool
        try:  # before anything is allocated for the caller
            cid, serial = pool.authenticator.identify_call(context)  # type: ignore[arg-type]
        except AuthError as exc:
            pool._log_once(_peer_host(context.peer()), "refused a connection from %s: %s", context.peer(), exc)
            await context.abort(exc.code, str(exc))
        admitted, why = pool._admission.enter(cid)
        if not admitted:
            pool._log_once(f"admission {cid}", "refused a stream of client %s: %s", cid, why)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, why)
        try:
            first = await self._first_message(context)
        finally:
            pool._admission.leave(cid)
        if first is _NO_HELLO:
            pool._log_once(f"hello {cid}", "client %s: no Hello within %.0fs, closing its stream", cid,
                           pool.hello_deadline_s)
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"no Hello within {pool.hello_deadline_s:g}s (hello_deadline_s); closing the stream")
        if first is None:
            return
        if isinstance(first, wire.Invalid):
            pool._log_once(f"invalid {cid}", "client %s: first message is not valid protobuf: %s", cid, first.error)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"the first message is not a valid ClientMessage ({first.error}); expected a Hello")
        if first.WhichOneof("msg") != "hello" or first.hello.protocol_version != PROTOCOL_VERSION:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"expected hello with protocol version {PROTOCOL_VERSION}")
        if pool._full(cid):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"the server is full: {pool.max_clients} clients connected ([server] max_clients)")
        session = _Session(cid, pool, serial)
        pool._register(session)
        reader = asyncio.get_running_loop().create_task(self._read(session, context))
        try:
            await context.write(pb.ServerMessage(welcome=pb.Welcome(client_id=cid, heartbeat_s=pool.heartbeat_s)))
            await self._send(session, context)
        finally:
            session.finished.set()
            reader.cancel()
            session.close("disconnected")
        if session.close_status is not None:
            await context.abort(*session.close_status)

    async def _first_message(self, context: grpc.aio.ServicerContext) -> Any:
        """The stream's first message; ``None`` if it ended first, ``_NO_HELLO`` past the Hello deadline."""
        try:
            msg = await asyncio.wait_for(context.read(), self.pool.hello_deadline_s)
        except TimeoutError:
            return _NO_HELLO
        except grpc.RpcError:
            return None
        except Exception as exc:  # never into grpcio
            return wire.Invalid(f"{type(exc).__name__}: {exc}")
        return None if msg is grpc.aio.EOF else msg

    async def _send(self, session: _Session, context: grpc.aio.ServicerContext) -> None:
        while True:
            item = await session.out.get()
            if item is _CLOSE:
                return
            if item is _BEAT:
                await context.write(pb.ServerMessage(heartbeat=pb.Heartbeat(time=time.time())))
                continue
            if isinstance(item, list):  # ready messages (the goodbye)
                for msg in item:
                    await context.write(msg)
                continue
            pending, frames = item
            if pending.done.is_set():  # the task was cancelled (deadline) before it was sent
                continue
            sent = 0
            try:
                for frame in frames:
                    await context.write(wire.envelope(pb.ServerMessage, frame))
                    sent += 1
            except (asyncio.CancelledError, grpc.RpcError, grpc.aio.AioRpcError):
                raise
            except Exception as exc:  # a task that cannot be encoded fails; the stream survives if nothing went out
                log.warning("client %s: could not send its task: %s: %s", session.cid, type(exc).__name__, exc)
                session.cancel(pending.task_id)
                pending.fail(f"could not send the task: {type(exc).__name__}: {exc}")
                if sent:
                    session.close("could not be sent its task",
                                  (grpc.StatusCode.INTERNAL, f"task encoding failed: {exc}"))
                    return

    async def _read(self, session: _Session, context: grpc.aio.ServicerContext) -> None:
        try:
            while not session.closed.is_set():
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    break
                session.last_seen = time.monotonic()
                if isinstance(msg, wire.Invalid):
                    log.warning("client %s: sent a message that is not valid protobuf: %s", session.cid, msg.error)
                    session.close("sent an invalid message", (grpc.StatusCode.INVALID_ARGUMENT,
                                                              f"not a valid ClientMessage: {msg.error}"))
                    break
                if msg.WhichOneof("msg") == "frame":
                    session.on_frame(msg.frame)
        except asyncio.CancelledError:
            raise
        except grpc.RpcError:
            pass
        except Exception as exc:  # never let one client's bytes take the server down
            log.warning("client %s: stream error: %s", session.cid, exc)
        session.close("disconnected")


_NO_HELLO = object()
_BEAT = object()  # sentinel in a session's outbound queue: send a heartbeat


def _peer_host(peer: str) -> str:
    """``ipv4:1.2.3.4:5678`` -> ``ipv4:1.2.3.4`` (a peer's reconnects come from new ports)."""
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class GrpcPool:
    """A :class:`~fedloom.core.pool.ClientPool` whose clients are remote processes.

    Every stream is a coroutine on one asyncio event loop (``grpc.aio``) that runs in one background
    thread, so a connected client costs a few objects, not a thread. :meth:`fit` and :meth:`evaluate`
    block their caller until results arrive or the deadline passes, and may be called from several
    threads at once.

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
        max_clients: Clients connected at once (their streams, plus the streams waiting for Hello,
            are served concurrently).
        hello_deadline_s: A stream that sends no Hello within this long is closed.
        max_streams_before_hello: Streams one identity may hold open before their Hello.
        max_connects_per_minute: Connection attempts one identity may make per minute.
        max_update_ratio: A fit result's parameters, and separately its extras, may be this many times
            the model's bytes (plus 1 MiB); see :func:`check_result_size`.
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
        hello_deadline_s: float = 10.0,
        max_streams_before_hello: int = 2,
        max_connects_per_minute: int = 60,
        max_update_ratio: float = 4.0,
    ) -> None:
        if server_credentials is None and (authenticator.use_tokens or authenticator.require_cert):
            raise ConfigError("a plaintext server (no TLS) cannot authenticate clients: tokens would travel in "
                              "plaintext and client certificates need TLS; serve with server_credentials")
        if (problem := ensure_fd_limit(max_clients)) is not None:
            log.warning("%s", problem)
        self.authenticator = authenticator
        self.min_clients = min_clients
        self.wait_clients_s = wait_clients_s
        self.max_message_bytes = max_message_bytes
        self.chunk_bytes = chunk_bytes
        self.heartbeat_s = heartbeat_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_clients = max_clients
        self.hello_deadline_s = hello_deadline_s
        self.max_update_ratio = max_update_ratio
        self._admission = Admission(max_before_hello=max_streams_before_hello, per_minute=max_connects_per_minute)
        self._once = OncePer(60.0)
        self._sessions: dict[ClientId, _Session] = {}
        self._cond = threading.Condition()
        frame_limit = chunk_bytes + (1 << 20)  # one frame: a chunk plus a header's worth
        # every client's stream, plus each identity's streams waiting for Hello, plus a few being refused:
        # streams before Hello cannot crowd out the clients (they cost a coroutine each, not a thread)
        streams = max_clients * (1 + max_streams_before_hello) + 16
        options = [
            ("grpc.max_receive_message_length", frame_limit),
            ("grpc.max_send_message_length", frame_limit),
            ("grpc.so_reuseport", 0),  # a port in use must fail loudly, not be shared
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
            ("grpc.http2.max_ping_strikes", 0),
            *wire.stream_options(chunk_bytes),  # an HTTP/2 window of two frames (docs/communication.md)
        ]
        # handlers added with add_service may be synchronous (the status service): a few threads run them
        self._sync_handlers = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="fedloom-grpc-sync")
        self._loop = LoopThread("grpc-loop", start=False)  # its thread starts with the server (start())
        self._ticker: asyncio.Task[None] | None = None

        async def make() -> tuple[grpc.aio.Server, int]:
            server = grpc.aio.server(migration_thread_pool=self._sync_handlers, options=options,
                                     maximum_concurrent_rpcs=streams)
            handler = grpc.stream_stream_rpc_method_handler(
                _Servicer(self).Connect,
                request_deserializer=wire.safe_parser(pb.ClientMessage),
                response_serializer=wire.serialize,
            )
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Connect": handler}),))
            if server_credentials is None:
                return server, server.add_insecure_port(address)
            return server, server.add_secure_port(address, server_credentials)

        try:
            self._server, self.port = self._loop.run(make())
        except BaseException:
            self._loop.stop()
            self._sync_handlers.shutdown(wait=False)
            raise
        self._started = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> GrpcPool:
        """Start serving (returns ``self``)."""

        async def start() -> None:
            await self._server.start()
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

        self._loop.start()
        self._loop.run(start())
        self._started = True
        return self

    def close(self, reason: str = "training finished", *, timeout_s: float = 10.0) -> None:
        """Tell every client ``reason`` (they exit) and stop serving, within about ``timeout_s`` seconds."""
        with self._cond:  # check-and-set under the lock: two threads closing at once close once
            if self._closed:
                return
            self._closed = True
            sessions = list(self._sessions.values())
        bye = [pb.ServerMessage(bye=pb.Bye(reason=reason))]
        for s in sessions:
            self._loop.post(s.out.put_nowait, bye)
            self._loop.post(s.out.put_nowait, _CLOSE)
        if self._started:
            deadline = time.monotonic() + timeout_s / 2
            for s in sessions:  # let the goodbyes reach the clients
                s.finished.wait(max(0.0, deadline - time.monotonic()))
            grace = min(2.0, timeout_s / 4)

            async def stop() -> None:
                if self._ticker is not None:
                    self._ticker.cancel()
                await self._server.stop(grace)

            try:
                self._loop.run(stop(), timeout=max(0.1, timeout_s / 2 - grace) + grace)
            except (futures.TimeoutError, TimeoutError):
                log.warning("the gRPC server did not stop within %.0fs; stopping its event loop", timeout_s)
            self._started = False
        else:
            with contextlib.suppress(Exception):
                self._loop.run(self._server.stop(None), timeout=timeout_s / 2)
        self._loop.stop(timeout=max(1.0, timeout_s / 4))
        self._sync_handlers.shutdown(wait=False)

    async def _tick(self) -> None:
        """Heartbeats, silence and revocation checks for every session, each on its own phase.

        One task for the whole fleet: every ``heartbeat_s / 5`` it visits the sessions whose turn has
        come (each one once per ``heartbeat_s``, counted from when it connected, so the work spreads
        out), drops the silent and the revoked, and queues a heartbeat for the idle.
        """
        period = max(0.02, self.heartbeat_s / 5)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            with self._cond:
                sessions = list(self._sessions.values())
            for s in sessions:
                if now < s.next_beat or s.closed.is_set():
                    continue
                s.next_beat = now + self.heartbeat_s
                try:  # an error here must not end this task: it beats and watches the whole fleet
                    self._tick_session(s, now)
                except Exception as exc:
                    self._log_once("tick", "client %s: heartbeat check failed: %s: %s", s.cid, type(exc).__name__, exc)

    def _tick_session(self, s: _Session, now: float) -> None:
        if now - s.last_seen > self.heartbeat_timeout_s:
            log.warning("client %s: no heartbeat for %.0fs, dropping it", s.cid, self.heartbeat_timeout_s)
            s.close("stopped sending heartbeats")
        elif not self.authenticator.still_valid(s.cid, s.serial):
            log.warning("client %s: its credentials were revoked, dropping it", s.cid)
            s.close("was revoked", (grpc.StatusCode.PERMISSION_DENIED,
                                    f"the credentials of client {s.cid!r} were revoked (fedloom certs "
                                    "revoke); ask the server's operator for new credentials"))
        elif s.out.empty():
            s.out.put_nowait(_BEAT)

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        """Log a warning once per ``key`` and minute (with the count of the ones left out)."""
        first, suppressed = self._once.first(key)
        if first:
            log.warning(message + (f" ({suppressed} more like it in the last minute)" if suppressed else ""), *args)

    def _full(self, cid: ClientId) -> bool:
        with self._cond:
            return cid not in self._sessions and len(self._sessions) >= self.max_clients

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
        """Send each fit task to its client and wait for the results (thread-safe; see
        :class:`~fedloom.core.pool.ClientPool`)."""
        return self._run(tasks, pb.FIT_INS, expected, timeout)

    def evaluate(
        self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *, timeout: float | None
    ) -> PoolResult[EvaluateRes]:
        """Send each evaluation task to its client and wait for the results (thread-safe)."""
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
        """Serve more gRPC services on this server's port (e.g. the admin status service); before :meth:`start`.

        Handlers may be coroutines or ordinary functions (these run on a small thread pool).
        """
        if self._started:
            raise RuntimeError("add services before start()")
        self._server.add_generic_rpc_handlers(handlers)
