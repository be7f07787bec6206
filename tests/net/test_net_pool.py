"""GrpcPool over real gRPC + TLS + tokens on 127.0.0.1: results, deadlines, faults, bad input."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
from net_helpers import AddOne

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import EvaluateIns, FitIns, FitRes
from fedloom.net.proto import fedloom_pb2 as pb
from fedloom.net.proto import fedloom_pb2_grpc as pb_grpc

W = Parameters({"w": np.zeros(3, np.float32)})


def fit_all(pool, cids, params=W, timeout=10.0, rnd=1):
    return pool.fit([(c, FitIns(params, {"round": rnd})) for c in cids], expected=params.spec(), timeout=timeout)


def test_round_trip_in_task_order_with_extras_and_evaluate(harness):
    h = harness(min_clients=3)
    for name in ("2", "0", "1"):
        h.start(name, AddOne())
    assert h.pool.available() == ["0", "1", "2"]
    out = fit_all(h.pool, ["2", "0", "1"])
    assert [c for c, _ in out.results] == ["2", "0", "1"] and out.failures == []
    res = out.results[0][1]
    assert res.parameters["w"].tolist() == [1.0, 1.0, 1.0] and res.metrics == {"r": 1}
    assert res.extras["count"]["n"].dtype == np.int64 and res.extras["count"]["n"].tolist() == [1]
    assert out.stats.bytes_down == 3 * 12 and out.stats.bytes_up == 3 * (12 + 8)
    ev = h.pool.evaluate([("1", EvaluateIns(Parameters({"w": np.ones(3, np.float32)}), {}))], timeout=10)
    assert ev.results[0][1].loss == 3.0 and ev.results[0][1].metrics == {"acc": 0.5}


def test_deadline_failure_then_late_result_is_discarded(harness):
    h = harness(min_clients=2)
    slow = AddOne(delay=1.5)
    h.start("0", AddOne())
    h.start("1", slow)
    h.pool.available()
    t0 = time.monotonic()
    out = fit_all(h.pool, ["0", "1"], timeout=0.5)
    assert time.monotonic() - t0 < 1.4
    assert [c for c, _ in out.results] == ["0"]
    assert out.failures[0].cid == "1" and "deadline" in out.failures[0].reason
    # round 2: the slow client's late round-1 result must not be taken for its round-2 result
    out2 = fit_all(h.pool, ["0", "1"], timeout=10, rnd=2)
    assert out2.failures == []
    assert dict(out2.results)["1"].metrics == {"r": 2}
    assert slow.calls == 2


def test_client_exception_and_missing_client_are_failures(harness):
    h = harness(min_clients=1)
    h.start("0", AddOne(fail=True))
    h.pool.available()
    out = fit_all(h.pool, ["0", "2"])
    reasons = {f.cid: f.reason for f in out.failures}
    assert "disk on fire" in reasons["0"] and reasons["2"] == "not connected"


class Shaped(Client):
    def __init__(self, arrays):
        self.arrays = arrays

    def get_parameters(self, config):
        return W

    def fit(self, parameters, config):
        return FitRes(Parameters(self.arrays), 1)

    def evaluate(self, parameters, config):
        raise NotImplementedError


def test_wrong_names_shapes_dtypes_rejected_before_payload(harness):
    h = harness(min_clients=3)
    h.start("0", Shaped({"w": np.zeros(4, np.float32)}))
    h.start("1", Shaped({"v": np.zeros(3, np.float32)}))
    h.start("2", Shaped({"w": np.zeros(3, np.float64)}))
    h.pool.available()
    out = fit_all(h.pool, ["0", "1", "2"])
    reasons = {f.cid: f.reason for f in out.failures}
    assert "shape (4,) != expected (3,)" in reasons["0"]
    assert "wrong names" in reasons["1"]
    assert "dtype f8 != expected f4" in reasons["2"]
    assert h.pool.connected() == ["0", "1", "2"]  # rejected, not disconnected


def test_oversized_result_is_refused_and_client_reconnects(harness):
    h = harness(min_clients=1, max_message_bytes=1000)
    big = Parameters({"w": np.zeros(3, np.float32)})

    class Big(AddOne):
        def fit(self, parameters, config):
            res = super().fit(parameters, config)
            res.extras["blob"] = Parameters({"b": np.zeros(10_000, np.uint8)})
            return res

    rt = h.start("0", Big())
    h.pool.available()
    out = fit_all(h.pool, ["0"], params=big)
    assert "10000" in out.failures[0].reason or "allowed" in out.failures[0].reason
    assert h.pool.wait_for_clients(1, timeout=10)  # reconnected after the server closed its stream
    assert rt.identity == "0"


def test_large_model_streams_in_chunks(harness):
    h = harness(min_clients=1, chunk_bytes=256 * 1024)
    h.start("0", AddOne(), chunk_bytes=256 * 1024)
    h.pool.available()
    params = Parameters({"w": np.arange(3_000_000, dtype=np.float32), "b": np.ones(5, np.float16)})
    out = fit_all(h.pool, ["0"], params=params, timeout=60)
    assert out.failures == []
    np.testing.assert_array_equal(out.results[0][1].parameters["w"], params["w"] + 1)
    assert out.stats.bytes_down == params.nbytes


def _raw_session(h, name="1"):
    """Connect with a real token but drive the stream by hand."""
    token = (h.creds / "clients" / name / "token").read_text()
    channel = grpc.secure_channel(h.address, grpc.ssl_channel_credentials((h.creds / "ca.pem").read_bytes()))
    stub = pb_grpc.FedloomStub(channel)
    import queue

    q: queue.Queue = queue.Queue()
    q.put(pb.ClientMessage(hello=pb.Hello(protocol_version=1)))

    def reqs():
        while (m := q.get()) is not None:
            yield m

    call = stub.Connect(reqs(), metadata=[("authorization", f"Bearer {token}")])
    return channel, call, q


def test_disconnect_mid_task_is_a_failure_and_others_complete(harness):
    h = harness(min_clients=2)
    h.start("0", AddOne())
    channel, call, q = _raw_session(h, "1")
    h.pool.available()
    result = {}
    t = threading.Thread(target=lambda: result.update(out=fit_all(h.pool, ["0", "1"], timeout=20)))
    t.start()
    for msg in call:  # wait until the task reaches us, then vanish
        if msg.WhichOneof("msg") == "frame":
            break
    call.cancel()
    channel.close()
    t.join(20)
    out = result["out"]
    assert [c for c, _ in out.results] == ["0"]
    assert out.failures[0].cid == "1" and "disconnected" in out.failures[0].reason


def test_silent_client_dropped_by_heartbeat_timeout(harness):
    h = harness(min_clients=1, heartbeat_s=0.2, heartbeat_timeout_s=1.0)
    channel, call, q = _raw_session(h, "1")
    assert h.pool.wait_for_clients(1, timeout=10)
    deadline = time.monotonic() + 10
    while h.pool.connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h.pool.connected() == []
    q.put(None)
    channel.close()


def test_malformed_protobuf_does_not_hurt_the_server(harness):
    h = harness(min_clients=1)
    h.start("0", AddOne())
    token = (h.creds / "clients" / "1" / "token").read_text()
    with grpc.secure_channel(h.address, grpc.ssl_channel_credentials((h.creds / "ca.pem").read_bytes())) as ch:
        raw = ch.stream_stream("/fedloom.net.Fedloom/Connect", request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
        hello = pb.ClientMessage(hello=pb.Hello(protocol_version=1)).SerializeToString()
        call = raw(iter([hello, b"\xff\xff\xff\xff garbage"]), metadata=[("authorization", f"Bearer {token}")])
        try:
            for _ in call:
                pass
        except grpc.RpcError as exc:  # closed by the servicer itself, with a reason (not grpcio's INTERNAL)
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid ClientMessage" in exc.details()
    h.pool.available()
    out = fit_all(h.pool, ["0"])
    assert out.failures == [] and [c for c, _ in out.results] == ["0"]


def test_available_waits_for_min_clients_then_fails_the_round(harness):
    import pytest

    from fedloom.errors import RoundFailedError

    h = harness(min_clients=2, wait_clients_s=0.3)
    h.start("0", AddOne())
    assert h.pool.wait_for_clients(1, timeout=10)
    with pytest.raises(RoundFailedError, match="only 1 of the 2"):
        h.pool.available()
    h.start("1", AddOne())
    h.pool.wait_clients_s = 10
    assert h.pool.available() == ["0", "1"]


def test_one_failing_credential_check_does_not_stop_the_fleets_heartbeats(harness):
    # one task beats, checks silence and revocation for every session: an exception in it (here the tokens
    # file unreadable once) ended that task for good, and a silent client was then never dropped
    h = harness(min_clients=1, heartbeat_s=0.2, heartbeat_timeout_s=1.0)
    real, calls = h.pool.authenticator.still_valid, []

    def flaky(cid, serial):
        calls.append(cid)
        if len(calls) == 1:
            raise PermissionError("tokens.json: permission denied")
        return real(cid, serial)

    h.pool.authenticator.still_valid = flaky
    channel, call, q = _raw_session(h, "1")
    assert h.pool.wait_for_clients(1, timeout=10)
    deadline = time.monotonic() + 10
    while h.pool.connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls and h.pool.connected() == []
    q.put(None)
    channel.close()
