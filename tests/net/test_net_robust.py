"""A server one client cannot block: Hello deadline, per-identity caps and rate limits, per-kind size
limits, invalid protobuf answered by the servicer, and a shutdown that always finishes."""

from __future__ import annotations

import queue
import threading
import time

import grpc
import numpy as np
import pytest
from net_helpers import AddOne

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.net.admission import Admission, OncePer
from fedloom.net.chunking import MessageTooLarge
from fedloom.net.proto import fedloom_pb2 as pb
from fedloom.net.server import RESULT_SLACK_BYTES, check_result_size

W = Parameters({"w": np.zeros(3, np.float32)})
CONNECT = "/fedloom.net.Fedloom/Connect"


def _raw_stream(h, name, first: list[bytes] | None):
    """A stream with client ``name``'s real token whose messages are raw bytes; ``first`` is sent at once,
    more with ``q.put``; ``None`` in ``q`` ends it."""
    token = (h.creds / "clients" / name / "token").read_text()
    channel = grpc.secure_channel(h.address, grpc.ssl_channel_credentials((h.creds / "ca.pem").read_bytes()))
    q: queue.Queue = queue.Queue()
    for m in first or []:
        q.put(m)

    def reqs():
        while (m := q.get()) is not None:
            yield m

    call = channel.stream_stream(CONNECT, request_serializer=lambda b: b, response_deserializer=lambda b: b)(
        reqs(), metadata=[("authorization", f"Bearer {token}")])
    return channel, call, q


class _Drain:
    """Read a stream to its end in a thread; :meth:`status` is its code and details (None while open)."""

    def __init__(self, call) -> None:
        self.box: list = []
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call) -> None:
        try:
            for _ in call:
                pass
            self.box.append((grpc.StatusCode.OK, ""))
        except grpc.RpcError as exc:
            self.box.append((exc.code(), exc.details()))

    def status(self, timeout=15.0):
        self.thread.join(timeout)
        return self.box[0] if self.box else None


def _status(call, timeout=15.0):
    return _Drain(call).status(timeout)


def _fit(pool, cids, timeout=15.0):
    return pool.fit([(c, FitIns(W, {"round": 1})) for c in cids], expected=W.spec(), timeout=timeout)


def test_hello_less_streams_with_a_valid_token_cannot_keep_clients_out(harness):
    # before: concurrent streams were capped at max_clients, so three Hello-less streams of client 1 took
    # every slot and clients 0 and 2 were refused (RESOURCE_EXHAUSTED) until client 1 let go
    h = harness(min_clients=2, max_clients=3, hello_deadline_s=4.0, max_streams_before_hello=2)
    silent = [_raw_stream(h, "1", None) for _ in range(3)]
    drains = [_Drain(call) for _, call, _ in silent]
    statuses = [d.status(timeout=1.0) for d in drains]
    refused = [s for s in statuses if s is not None]
    assert len(refused) == 1 and refused[0][0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "waiting to say Hello" in refused[0][1]
    t0 = time.monotonic()
    h.start("0", AddOne())
    h.start("2", AddOne())
    assert h.pool.wait_for_clients(2, timeout=10)
    assert time.monotonic() - t0 < 2.5  # joined while the silent streams were still open
    out = _fit(h.pool, ["0", "2"])
    assert out.failures == [] and [c for c, _ in out.results] == ["0", "2"]
    # the two admitted silent streams are closed at their Hello deadline
    open_ones = [d for d, s in zip(drains, statuses, strict=True) if s is None]
    assert len(open_ones) == 2
    for d in open_ones:
        code, details = d.status(timeout=10)
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "no Hello within 4s" in details
    assert h.pool.connected() == ["0", "2"]
    for channel, _, q in silent:
        q.put(None)
        channel.close()


def test_garbage_first_messages_are_refused_and_the_pool_still_closes(harness):
    h = harness(min_clients=1)
    h.start("0", AddOne())
    garbage = [_raw_stream(h, "1", [b"\xff\xff\xff\xff garbage"]) for _ in range(2)]
    garbage.append(_raw_stream(h, "2", [b"\x0a\xff\xff\xff\xff\x0f"]))
    for _, call, _ in garbage:
        code, details = _status(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid ClientMessage" in details
    h.pool.available()
    assert _fit(h.pool, ["0"]).failures == []
    closer = threading.Thread(target=h.pool.close, daemon=True)
    t0 = time.monotonic()
    closer.start()
    closer.join(15)
    # before: grpcio aborted these calls itself and server.stop(grace).wait() never returned
    assert not closer.is_alive() and time.monotonic() - t0 < 12
    for channel, _, q in garbage:
        q.put(None)
        channel.close()


def test_connection_attempts_are_rate_limited_per_identity(harness):
    h = harness(min_clients=1, max_connects_per_minute=6, hello_deadline_s=5.0)  # a burst of 1
    hello = pb.ClientMessage(hello=pb.Hello(protocol_version=1)).SerializeToString()
    first = _raw_stream(h, "1", [hello])
    assert h.pool.wait_for_clients(1, timeout=10)
    second = _raw_stream(h, "1", [hello])
    code, details = _status(second[1])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "connection attempts a minute" in details
    third = _raw_stream(h, "2", [hello])  # another identity is not affected
    assert h.pool.wait_for_clients(2, timeout=10)
    for channel, _, q in (first, second, third):
        q.put(None)
        channel.close()


def test_admission_bucket_refills_and_caps_are_per_identity():
    now = [0.0]
    adm = Admission(max_before_hello=2, per_minute=60, clock=lambda: now[0])  # burst 6, 1 per second
    assert [adm.enter("a")[0] for _ in range(3)] == [True, True, False]  # the third waits for Hello
    adm.leave("a")
    adm.leave("a")
    results = [adm.enter("a")[0] for _ in range(2)]
    [adm.leave("a") for _ in range(2)]
    assert results == [True, True]
    ok, why = adm.enter("a")
    adm.leave("a")
    assert ok  # 5 of 6 used
    ok, why = adm.enter("a")
    adm.leave("a")
    assert ok
    ok, why = adm.enter("a")
    assert not ok and "60 connection attempts a minute" in why
    assert adm.enter("b")[0]
    now[0] += 1.0  # one more token
    assert adm.enter("a")[0]
    once = OncePer(60.0, clock=lambda: now[0])
    assert once.first("peer") == (True, 0)
    assert once.first("peer") == (False, 0) and once.first("peer") == (False, 0)
    now[0] += 61
    assert once.first("peer") == (True, 2)


def _header(kind, arrays=(), extras=(), payload=None):
    h = pb.Header(task_id="t", kind=kind)
    for key, items in (("", arrays), *extras):
        g = h.groups.add(key=key)
        for name, n in items:
            g.arrays.add(name=name, dtype="u1", shape=[n])
    h.payload_size = sum(n for _, items in (("", arrays), *extras) for _, n in items) if payload is None else payload
    return h


@pytest.mark.parametrize("header, match", [
    (_header(pb.EVALUATE_RES, [("w", 10)]), "EVALUATE_RES carries no arrays"),
    (_header(pb.ERROR, [], payload=0).__class__(task_id="t", kind=pb.ERROR, payload_size=5), "ERROR carries no arrays"),
    (pb.Header(task_id="t", kind=pb.ERROR, error="x" * 70_000), "ERROR header of"),
    (_header(pb.FIT_RES, [("w", 4 * 1000 + RESULT_SLACK_BYTES + 1)]), "parameters of"),
    (_header(pb.FIT_RES, [("w", 1000)], extras=(("blob", [("b", 4 * 1000 + RESULT_SLACK_BYTES + 1)]),)), "extras of"),
])
def test_result_size_limits_per_kind(header, match):
    with pytest.raises(MessageTooLarge, match=match):
        check_result_size(header, model_bytes=1000, ratio=4.0)


def test_result_size_limits_admit_what_fits():
    check_result_size(_header(pb.FIT_RES, [("w", 1000)], extras=(("c", [("c", 1000)]),)), model_bytes=1000, ratio=4.0)
    check_result_size(pb.Header(task_id="t", kind=pb.EVALUATE_RES, num_examples=3), model_bytes=10, ratio=1.0)


def test_an_evaluation_result_declaring_a_gigabyte_is_refused_before_allocation(harness):
    # before: any kind could declare up to the global 2 GB limit; the server allocated it and waited for the bytes
    h = harness(min_clients=1)
    hello = pb.ClientMessage(hello=pb.Hello(protocol_version=1)).SerializeToString()
    channel, call, q = _raw_stream(h, "1", [hello])
    assert h.pool.wait_for_clients(1, timeout=10)
    result: dict = {}
    from fedloom.core.types import EvaluateIns

    t = threading.Thread(target=lambda: result.update(out=h.pool.evaluate([("1", EvaluateIns(W, {}))], timeout=10)))
    t.start()
    task_id = None
    for raw in call:
        msg = pb.ServerMessage.FromString(raw)
        if msg.WhichOneof("msg") == "frame" and msg.frame.WhichOneof("body") == "header":
            task_id = msg.frame.header.task_id
            break
    bad = _header(pb.EVALUATE_RES, [("x", 1 << 30)])
    bad.task_id = task_id
    q.put(pb.ClientMessage(frame=pb.Frame(header=bad)).SerializeToString())
    t.join(15)
    failure = result["out"].failures[0]
    assert failure.cid == "1" and "EVALUATE_RES carries no arrays" in failure.reason
    code, details = _status(call)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    q.put(None)
    channel.close()


@pytest.mark.slow
def test_garbage_first_messages_on_several_streams_then_the_run_ends_and_writes_its_outputs(tmp_path):
    # before: after the last round GrpcPool.close waited forever in server.stop(grace).wait(), so the
    # model and history were never written
    from fedloom.net.config import load_deployment
    from fedloom.net.deploy import run_client, run_server

    path = tmp_path / "deploy.toml"
    path.write_text('dataset = "iris"\nclients = 2\nrounds = 1\nhidden = 8\npartition = "iid"\nprogress = false\n'
                    '[server]\naddress = "127.0.0.1:0"\ncheckpoint_dir = "run"\nheartbeat_s = 0.5\n'
                    '[client]\nheartbeat_s = 0.5\n')
    cfg, scfg, ccfg = load_deployment(path)
    port: list[int] = []
    result: dict = {}
    server = threading.Thread(target=lambda: result.update(r=run_server(cfg, scfg, insecure=True,
                                                                         on_listen=port.append)), daemon=True)
    server.start()
    while not port:
        server.join(0.05)
    address = f"127.0.0.1:{port[0]}"
    channels, drains = [], []
    for i in range(3):  # an authenticated identity each (open server: the claimed name)
        channel = grpc.insecure_channel(address)
        call = channel.stream_stream(CONNECT, request_serializer=lambda b: b, response_deserializer=lambda b: b)(
            iter([b"\xff\xfe garbage %d" % i]), metadata=[("x-fedloom-client", f"g{i}")])
        channels.append(channel)
        drains.append(_Drain(call))
    clients = [threading.Thread(target=run_client, args=(cfg, ccfg), daemon=True,
                                kwargs={"server": address, "name": str(i), "insecure": True}) for i in range(2)]
    for c in clients:
        c.start()
    server.join(60)
    assert not server.is_alive(), "the server did not finish"
    assert [h.round for h in result["r"].history] == [1]
    assert (tmp_path / "run" / "model.safetensors").exists() and (tmp_path / "run" / "history.json").exists()
    assert all(d.status()[0] == grpc.StatusCode.INVALID_ARGUMENT for d in drains)
    for c in clients:
        c.join(10)
    for channel in channels:
        channel.close()


def test_a_result_of_an_unknown_kind_fails_its_task_with_a_reason_not_an_exception():
    # proto3 keeps unknown enum numbers: Kind.Name(99) raised ValueError out of the header check, past the
    # handlers of on_frame, and the stream died as a generic "stream error" instead of rejecting the task
    from types import SimpleNamespace

    from fedloom.net.server import _Pending, _Session

    loop = SimpleNamespace(post=lambda fn, *args: True)
    pool = SimpleNamespace(heartbeat_s=5.0, max_message_bytes=1 << 20, max_update_ratio=4.0, _loop=loop,
                           _forget=lambda s: None)
    session = _Session("1", pool)  # type: ignore[arg-type]
    pending = _Pending("t", pb.FIT_INS, W.spec(), W.nbytes)
    session.pending["t"] = pending
    session.on_frame(pb.Frame(header=pb.Header(task_id="t", kind=99)))
    assert pending.done.is_set() and "expected a FIT_RES, got 99" in (pending.failure or "")
    assert not session.closed.is_set()  # the stream stays in sync and usable
