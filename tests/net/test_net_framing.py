"""Data frames are views of the arrays until sent, copied once into protobuf-compatible wire bytes, and the
assembler still refuses out-of-order, oversized and stray frames that arrive through the wire path."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitRes
from fedloom.errors import ValidationError
from fedloom.net import wire
from fedloom.net.chunking import Assembler, encode_frames
from fedloom.net.messages import decode_message, encode_message
from fedloom.net.proto import fedloom_pb2 as pb


def over_the_wire(frames, cls=pb.ClientMessage):
    """What the receiving side's deserializer sees for each frame (the bytes gRPC carries)."""
    parse = wire.parser(cls)
    return [parse(wire.serialize(wire.envelope(cls, f))).frame for f in frames]


def three_arrays() -> Parameters:
    return Parameters({"a": np.arange(10, dtype=np.float32), "b": np.arange(3, dtype=np.int16),
                       "c": np.linspace(0, 1, 7)})


def test_data_frames_are_views_of_the_arrays_until_sent():
    params = three_arrays()
    frames = list(encode_frames(pb.Header(task_id="t"), [("", params)], chunk_bytes=16))
    parts = [p for f in frames[1:] for p in f.parts]
    assert all(isinstance(p, memoryview) for p in parts)
    # every byte of every part lies inside one of the arrays: nothing was copied while framing
    assert all(any(np.shares_memory(np.frombuffer(p, np.uint8), arr) for arr in params.values()) for p in parts)
    assert [f.nbytes for f in frames[1:]] == [16] * 6 + [params.nbytes - 96]
    # a frame spans arrays: the third holds the last 8 bytes of "a", all 6 of "b" and 2 of "c"
    assert [len(p) for p in frames[3].parts] == [8, 6, 2]


@pytest.mark.parametrize("chunk", [1, 5, 16, 20, 1 << 20])
def test_frames_spanning_arrays_are_protobuf_bytes_and_reassemble(chunk):
    params = three_arrays()
    frames = list(encode_frames(pb.Header(task_id="t", kind=pb.FIT_RES), [("", params)], chunk_bytes=chunk))
    for f in frames[1:]:
        raw = wire.serialize(wire.envelope(pb.ClientMessage, f))
        assert raw == pb.ClientMessage(frame=pb.Frame(data=b"".join(bytes(p) for p in f.parts))).SerializeToString()
    asm = Assembler(max_bytes=1 << 20)
    done = [asm.feed(f) for f in over_the_wire(frames)][-1]
    assert done is not None
    for name, arr in params.items():
        np.testing.assert_array_equal(done.groups[""][name], arr)
        assert done.groups[""][name].dtype == arr.dtype


def test_a_frame_read_in_process_joins_its_parts():
    frames = list(encode_frames(pb.Header(task_id="t"), [("", three_arrays())], chunk_bytes=64))
    assert bytes(frames[1].data) == b"".join(bytes(p) for p in frames[1].parts)
    with pytest.raises(ValueError, match="either"):
        wire.DataFrame(b"x", parts=[b"x"])


def test_out_of_order_frames_are_refused_through_the_wire_path():
    res = FitRes(Parameters({"w": np.arange(8, dtype=np.float32)}), 1)
    frames = over_the_wire(list(encode_message("t1", res, chunk_bytes=8)))
    asm = Assembler(max_bytes=1 << 20)
    with pytest.raises(ValidationError, match="without a header"):
        asm.feed(frames[1])  # data before its header
    asm.feed(frames[0])
    asm.feed(frames[1])
    with pytest.raises(ValidationError, match="before the previous payload was complete"):
        asm.feed(frames[0])  # a header again while the payload is still arriving
    # the assembler starts clean after the refusal: a whole message in order still assembles
    done = [asm.feed(f) for f in frames][-1]
    np.testing.assert_array_equal(decode_message(done)[1].parameters["w"], res.parameters["w"])
    with pytest.raises(ValidationError, match="without a header"):
        asm.feed(frames[2])  # a replayed chunk after the message completed


def test_an_oversized_chunk_is_refused_through_the_wire_path():
    small = FitRes(Parameters({"w": np.ones(4, np.float32)}), 1)
    big = FitRes(Parameters({"w": np.ones(64, np.float32)}), 1)
    head = over_the_wire(list(encode_message("t", small)))[0]
    (oversized,) = over_the_wire(list(encode_message("t", big, chunk_bytes=1 << 20)))[1:]
    asm = Assembler(max_bytes=1 << 20)
    asm.feed(head)
    with pytest.raises(ValidationError, match="more data than the header declared"):
        asm.feed(oversized)  # 256 bytes against 16 declared: refused, nothing written past the arrays
    assert not asm.busy


def test_stream_window_holds_two_frames():
    for chunk in (1, 2 << 20, 16 << 20):
        (name, window), = wire.stream_options(chunk)
        assert name == "grpc.http2.lookahead_bytes"
        assert window >= 2 * (chunk + (1 << 20))


@pytest.mark.parametrize("shape", [[0, 2**62, 2**62], [0] * 70])
def test_an_empty_array_numpy_cannot_allocate_is_refused_as_invalid(shape):
    # zero bytes pass every size limit, but np.empty raised ValueError ("array is too big", "maximum supported
    # dimension"): not a ValidationError, so the server dropped the stream instead of rejecting the message
    header = pb.Header(task_id="t", kind=pb.FIT_RES)
    header.groups.add(key="extra").arrays.add(name="x", dtype="f4", shape=shape)
    with pytest.raises(ValidationError):
        Assembler(max_bytes=1024).feed(pb.Frame(header=header))
