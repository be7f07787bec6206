"""Wire format: every message kind and dtype round-trips; the assembler bounds and validates input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedloom.core.parameters import SUPPORTED_DTYPES, Parameters
from fedloom.core.types import EvaluateIns, EvaluateRes, FitIns, FitRes
from fedloom.errors import ValidationError
from fedloom.net.chunking import Assembler, MessageTooLarge, encode_frames
from fedloom.net.messages import RemoteError, decode_message, encode_error, encode_message
from fedloom.net.proto import fedloom_pb2 as pb


def roundtrip(message, *, chunk_bytes=7, max_bytes=1 << 30):
    asm = Assembler(max_bytes=max_bytes)
    done = None
    frames = list(encode_message("task-1", message, chunk_bytes=chunk_bytes))
    for i, frame in enumerate(frames):
        done = asm.feed(frame)
        assert (done is not None) == (i == len(frames) - 1)
    task_id, back = decode_message(done)
    assert task_id == "task-1"
    return back, frames


def all_dtypes() -> Parameters:
    rng = np.random.default_rng(0)
    arrays = {}
    for code in sorted(SUPPORTED_DTYPES):
        dt = np.dtype(code)
        if dt.kind == "b":
            arrays[code] = rng.random((2, 3)) > 0.5
        elif dt.kind in "iu":
            info = np.iinfo(dt)
            arrays[code] = np.array([[info.min, 0, info.max]], dtype=dt)
        else:
            arrays[code] = rng.standard_normal((3, 1, 2)).astype(dt)
    arrays["scalar"] = np.array(3.5, dtype=np.float64)
    arrays["empty"] = np.zeros((0, 4), dtype=np.float32)
    return Parameters(arrays)


def assert_same(a: Parameters, b: Parameters) -> None:
    assert a.names == b.names
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        np.testing.assert_array_equal(a[name], b[name])


def test_fit_ins_every_dtype_with_extras_and_config():
    params = all_dtypes()
    extras = {"mask": Parameters({"m": np.arange(10, dtype=np.uint64) * (2**60)}),
              "shares": Parameters({"s": np.array([-5, 7], dtype=np.int64)})}
    config = {"round": 3, "seed": 2**62, "lr": 0.125, "name": "x", "flag": True, "neg": -(2**63)}
    back, _ = roundtrip(FitIns(params, config, extras))
    assert isinstance(back, FitIns)
    assert_same(back.parameters, params)
    assert list(back.extras) == ["mask", "shares"]
    for k in extras:
        assert_same(back.extras[k], extras[k])
    assert back.config == config
    assert type(back.config["flag"]) is bool and type(back.config["round"]) is int


def test_fit_res_and_evaluate_messages():
    params = Parameters({"w": np.arange(12, dtype=np.float32).reshape(3, 4)})
    back, _ = roundtrip(FitRes(params, 17, {"train_loss": 0.25}, {"aux": Parameters({"a": np.ones(2, np.int8)})}))
    assert isinstance(back, FitRes) and back.num_examples == 17 and back.metrics == {"train_loss": 0.25}
    assert_same(back.parameters, params)
    assert back.extras["aux"]["a"].dtype == np.int8
    ev, _ = roundtrip(EvaluateIns(params, {"round": 2}))
    assert isinstance(ev, EvaluateIns) and ev.config == {"round": 2}
    res, frames = roundtrip(EvaluateRes(0.75, 9, {"accuracy": 0.5}))
    assert res == EvaluateRes(0.75, 9, {"accuracy": 0.5})
    assert len(frames) == 1  # no payload


def test_big_endian_arrays_arrive_as_little_endian_values():
    params = Parameters({"w": np.arange(5, dtype=">f8")})
    back, _ = roundtrip(FitIns(params, {}))
    np.testing.assert_array_equal(back.parameters["w"], np.arange(5.0))


def test_error_message():
    asm = Assembler(max_bytes=10)
    done = [asm.feed(f) for f in encode_error("t", "boom")][-1]
    assert decode_message(done) == ("t", RemoteError("boom"))


def test_chunks_are_bounded_and_cover_the_payload():
    params = Parameters({"a": np.ones(1000, np.float32), "b": np.ones(3, np.int8), "c": np.ones(77, np.float64)})
    frames = list(encode_frames(pb.Header(task_id="t"), [("", params)], chunk_bytes=256))
    data = [f.data for f in frames[1:]]
    assert frames[0].header.payload_size == params.nbytes == sum(len(d) for d in data)
    assert all(len(d) == 256 for d in data[:-1]) and 0 < len(data[-1]) <= 256


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 50), min_size=1, max_size=5), chunk=st.integers(1, 64))
def test_any_chunk_size_reassembles(sizes, chunk):
    params = Parameters({f"p{i}": np.arange(n, dtype=np.float32) + i for i, n in enumerate(sizes)})
    back, _ = roundtrip(FitIns(params, {}), chunk_bytes=chunk)
    assert_same(back.parameters, params)


def test_scalar_errors():
    with pytest.raises(ValidationError, match="64 bits"):
        list(encode_message("t", FitIns(Parameters(), {"big": 2**64})))
    with pytest.raises(ValidationError, match="scalar"):
        list(encode_message("t", FitIns(Parameters(), {"bad": [1, 2]})))  # type: ignore[dict-item]
    back, _ = roundtrip(FitRes(Parameters(), 1, {"np": np.float32(0.5)}))  # numpy scalars are accepted
    assert back.metrics == {"np": 0.5}


# -- the assembler at the trust boundary ---------------------------------------------------------
def header(arrays, payload_size, key=""):
    h = pb.Header(task_id="t", kind=pb.FIT_RES, payload_size=payload_size)
    g = h.groups.add(key=key)
    for name, dtype, shape in arrays:
        g.arrays.add(name=name, dtype=dtype, shape=shape)
    return pb.Frame(header=h)


def test_oversized_message_is_refused_before_allocation():
    asm = Assembler(max_bytes=1000)
    with pytest.raises(MessageTooLarge, match="1000"):
        asm.feed(header([("w", "f8", [10**12])], 8 * 10**12))


@pytest.mark.parametrize(
    ("arrays", "size", "match"),
    [
        ([("w", "f4", [4])], 15, "payload_size"),
        ([("w", "O", [1])], 8, "unsupported dtype"),
        ([("w", "f4", [-1])], 0, "negative"),
        ([("w", "f4", [1]), ("w", "f4", [1])], 8, "duplicate"),
    ],
)
def test_malformed_headers_are_rejected(arrays, size, match):
    with pytest.raises(ValidationError, match=match):
        Assembler(max_bytes=1 << 20).feed(header(arrays, size))


def test_data_errors():
    asm = Assembler(max_bytes=1 << 20)
    with pytest.raises(ValidationError, match="without a header"):
        asm.feed(pb.Frame(data=b"1234"))
    asm.feed(header([("w", "f4", [1])], 4))
    with pytest.raises(ValidationError, match="more data"):
        asm.feed(pb.Frame(data=b"12345"))
    with pytest.raises(ValidationError, match="empty frame"):
        asm.feed(pb.Frame())


def test_rejected_header_skips_its_payload_and_stays_in_sync():
    def only_w(h):
        if h.groups[0].arrays[0].name != "w":
            raise ValidationError("wrong names")

    asm = Assembler(max_bytes=1 << 20, check_header=only_w)
    bad = Parameters({"v": np.ones(4, np.float32)})
    good = Parameters({"w": np.full(4, 2.0, np.float32)})
    frames = list(encode_message("t", FitRes(bad, 1), chunk_bytes=5))
    with pytest.raises(ValidationError, match="wrong names"):
        asm.feed(frames[0])
    assert all(asm.feed(f) is None for f in frames[1:])  # payload of the rejected message is dropped
    done = [asm.feed(f) for f in encode_message("t2", FitRes(good, 1), chunk_bytes=5)][-1]
    np.testing.assert_array_equal(decode_message(done)[1].parameters["w"], good["w"])


def test_decode_rejects_inconsistent_messages():
    asm = Assembler(max_bytes=1 << 20)
    h = pb.Header(task_id="t", kind=pb.FIT_RES, num_examples=-1)
    h.groups.add(key="")
    with pytest.raises(ValidationError, match="num_examples"):
        decode_message(asm.feed(pb.Frame(header=h)))
    with pytest.raises(ValidationError, match="no parameters"):
        decode_message(asm.feed(pb.Frame(header=pb.Header(task_id="t", kind=pb.FIT_RES))))
    with pytest.raises(ValidationError, match="unknown message kind"):
        decode_message(asm.feed(pb.Frame(header=pb.Header(task_id="t", kind=pb.KIND_UNSPECIFIED))))


# -- the data-frame fast path is byte-compatible with protobuf -------------------------------------
@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 70_000])
def test_fast_data_frames_are_protobuf_wire_compatible(n):
    from fedloom.net import wire

    chunk = bytes(range(256)) * (n // 256) + bytes(n % 256)
    raw = wire.serialize(wire.data_message(chunk))
    assert raw == pb.ClientMessage(frame=pb.Frame(data=chunk)).SerializeToString()
    assert raw == pb.ServerMessage(frame=pb.Frame(data=chunk)).SerializeToString()
    parsed = wire.parser(pb.ServerMessage)(raw)
    assert parsed.WhichOneof("msg") == "frame" and bytes(parsed.frame.data) == chunk


def test_fast_parser_falls_back_to_protobuf():
    from fedloom.net import wire

    parse = wire.parser(pb.ServerMessage)
    header = pb.ServerMessage(frame=pb.Frame(header=pb.Header(task_id="t", payload_size=3)))
    assert parse(header.SerializeToString()) == header
    bye = pb.ServerMessage(bye=pb.Bye(reason="done"))
    assert parse(bye.SerializeToString()) == bye
    # a data frame followed by another field is not the fast-path shape: protobuf decides
    two = pb.ServerMessage(frame=pb.Frame(data=b"xy")).SerializeToString() + bye.SerializeToString()
    assert parse(two).WhichOneof("msg") == "bye"
    from google.protobuf.message import DecodeError

    with pytest.raises(DecodeError):
        parse(b"\x1a\x05\x12\x09abc")  # truncated
