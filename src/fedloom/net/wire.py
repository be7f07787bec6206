"""A fast path for data frames: hand-encoded protobuf bytes, parsed without copies.

Data frames are nearly all the bytes a deployment moves. Building them as protobuf objects costs
several full copies per chunk on each side (array -> bytes -> Frame -> envelope -> wire, and back),
so they are written here directly in protobuf wire format (``ClientMessage``/``ServerMessage`` field 3
``frame`` -> ``Frame`` field 2 ``data``: one copy into the wire buffer) and recognised on arrival
without a protobuf parse (the payload stays a view of the received buffer). The bytes on the wire are
exactly what protobuf would produce, so any protobuf client (e.g. one built from ``fedloom.proto`` in
another language) interoperates; every other message goes through protobuf as usual.

Example:
    >>> from fedloom.net.proto import fedloom_pb2 as pb
    >>> raw = serialize(data_message(b"abc"))
    >>> pb.ServerMessage.FromString(raw).frame.data
    b'abc'
    >>> bytes(parser(pb.ServerMessage)(raw).frame.data)
    b'abc'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DataFrame", "DataMessage", "Invalid", "data_message", "envelope", "serialize", "parser", "safe_parser",
           "stream_options"]

_FRAME_TAG = 0x1A  # field 3 (frame), wire type 2, in both ClientMessage and ServerMessage
_DATA_TAG = 0x12  # field 2 (data), wire type 2, in Frame


class DataFrame:
    """A ``Frame`` holding only ``data`` (duck-types the protobuf ``Frame``).

    A frame being sent may hold its payload as ``parts`` (views of the arrays it covers, in order):
    :func:`data_message` then copies them straight into the wire buffer, once; ``data`` joins them
    only if something reads it (e.g. an :class:`~fedloom.net.chunking.Assembler` fed in-process).
    """

    __slots__ = ("_data", "parts")

    def __init__(self, data: bytes | memoryview | None = None, *, parts: Sequence[bytes | memoryview] | None = None
                 ) -> None:
        if (data is None) == (parts is None):
            raise ValueError("give either data or parts")
        self._data = data
        self.parts = parts

    @property
    def data(self) -> bytes | memoryview:
        """The payload (for a frame built from ``parts``: their concatenation)."""
        if self._data is None:
            assert self.parts is not None
            self._data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        return self._data

    @property
    def nbytes(self) -> int:
        """Payload bytes."""
        if self._data is not None:
            return len(self._data)
        assert self.parts is not None
        return sum(len(p) for p in self.parts)

    def WhichOneof(self, _group: str) -> str:  # noqa: N802 - protobuf's method name
        return "data"


class DataMessage:
    """A ``ClientMessage``/``ServerMessage`` carrying one data frame (duck-types the protobuf one)."""

    __slots__ = ("frame", "wire")

    def __init__(self, frame: DataFrame, wire: bytes | None = None) -> None:
        self.frame = frame
        self.wire = wire

    def WhichOneof(self, _group: str) -> str:  # noqa: N802
        return "frame"


def stream_options(chunk_bytes: int) -> list[tuple[str, int]]:
    """gRPC channel/server options for streams that carry ``chunk_bytes`` data frames; both ends use them.

    ``grpc.http2.lookahead_bytes`` is the HTTP/2 window a receiver opens per stream. gRPC's default
    (64 KiB, grown later by bandwidth probing) makes a sender stop for window updates many times within
    one data frame: on loopback that made a 1 MiB frame take ~3.7 ms instead of ~1 ms to cross
    (``benchmarks/transport``). A window of two frames keeps one frame in flight while the previous one is
    read. It bounds what a peer can push ahead of the reader, and allocates nothing up front.
    """
    return [("grpc.http2.lookahead_bytes", max(4 << 20, 2 * (chunk_bytes + (1 << 20))))]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return -1, pos


def data_message(chunk: bytes | memoryview | Sequence[bytes | memoryview]) -> DataMessage:
    """The wire bytes of ``{frame: {data: chunk}}``, built with one copy of ``chunk``.

    ``chunk`` may be a sequence of parts (views of several arrays): they are copied into the wire
    buffer in order, still once, and never joined on their own first.
    """
    parts = [chunk] if isinstance(chunk, (bytes, bytearray, memoryview)) else list(chunk)
    n = sum(len(p) for p in parts)
    inner_head = bytes([_DATA_TAG]) + _varint(n)
    head = bytes([_FRAME_TAG]) + _varint(len(inner_head) + n) + inner_head
    return DataMessage(DataFrame(parts=parts), b"".join((head, *parts)))


def serialize(message: Any) -> bytes:
    """gRPC serializer: pre-built bytes for data messages, protobuf for everything else."""
    if isinstance(message, DataMessage):
        assert message.wire is not None
        return message.wire
    return message.SerializeToString()


def parser(cls: Any) -> Callable[[bytes], Any]:
    """gRPC deserializer for ``cls``: data messages become views, everything else parses as ``cls``."""

    def parse(raw: bytes) -> Any:
        buf = memoryview(raw)
        if len(buf) > 2 and buf[0] == _FRAME_TAG:
            outer, pos = _read_varint(buf, 1)
            if outer >= 0 and pos + outer == len(buf) and pos < len(buf) and buf[pos] == _DATA_TAG:
                inner, start = _read_varint(buf, pos + 1)
                if inner >= 0 and start + inner == len(buf):
                    return DataMessage(DataFrame(buf[start:]))
        return cls.FromString(raw)

    return parse


class Invalid:
    """What :func:`safe_parser` returns for bytes that are not a valid message (duck-types an empty one)."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error

    def WhichOneof(self, _group: str) -> None:  # noqa: N802
        return None


def safe_parser(cls: Any) -> Callable[[bytes], Any]:
    """:func:`parser` that never raises: invalid bytes become an :class:`Invalid` the handler answers itself.

    A deserializer that raises inside grpcio makes grpcio abort the call on its own, and a server
    with such a call could not shut down (``server.stop(grace).wait()`` never returned); the
    servicer closes the stream with ``INVALID_ARGUMENT`` instead.
    """
    parse = parser(cls)

    def parse_or_invalid(raw: bytes) -> Any:
        try:
            return parse(raw)
        except Exception as exc:  # protobuf's DecodeError, or anything a hostile byte string provokes
            return Invalid(f"{type(exc).__name__}: {exc}"[:200])

    return parse_or_invalid


def envelope(cls: Any, frame: Any) -> Any:
    """Wrap a frame for sending: data frames via :func:`data_message`, headers in a ``cls`` message."""
    if isinstance(frame, DataFrame):
        return data_message(frame.parts if frame.parts is not None else frame.data)
    return cls(frame=frame)
