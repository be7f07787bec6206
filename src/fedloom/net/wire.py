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

from collections.abc import Callable
from typing import Any

__all__ = ["DataFrame", "DataMessage", "Invalid", "data_message", "envelope", "serialize", "parser", "safe_parser"]

_FRAME_TAG = 0x1A  # field 3 (frame), wire type 2, in both ClientMessage and ServerMessage
_DATA_TAG = 0x12  # field 2 (data), wire type 2, in Frame


class DataFrame:
    """A ``Frame`` holding only ``data`` (duck-types the protobuf ``Frame``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data

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


def data_message(chunk: bytes | memoryview) -> DataMessage:
    """The wire bytes of ``{frame: {data: chunk}}``, built with one copy of ``chunk``."""
    n = len(chunk)
    inner_head = bytes([_DATA_TAG]) + _varint(n)
    head = bytes([_FRAME_TAG]) + _varint(len(inner_head) + n) + inner_head
    return DataMessage(DataFrame(chunk), b"".join((head, chunk)))


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
        return data_message(frame.data)
    return cls(frame=frame)
