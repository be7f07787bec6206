"""Stream messages of any size as a header frame followed by bounded raw-byte data frames.

A message is a :class:`~fedloom.net.proto.fedloom_pb2.Header` (names, dtypes and shapes of every
array, plus scalars) and the arrays' raw little-endian bytes, concatenated in header order and cut
into ``chunk_bytes`` pieces. The sender slices the arrays it already holds (one chunk copied at a
time) and the receiver writes chunks straight into arrays it allocates from the header, so a 1 GB
model crosses the wire holding one copy on each side plus one chunk. The receiver enforces a
maximum total size *before* allocating anything, and can reject a header (e.g. an update whose
shapes do not match the global model) before reading its payload.

Example:
    >>> import numpy as np
    >>> from fedloom.core.parameters import Parameters
    >>> from fedloom.net.proto import fedloom_pb2 as pb
    >>> frames = list(encode_frames(pb.Header(task_id="t"), [("", Parameters({"w": np.arange(6.0)}))],
    ...                             chunk_bytes=16))
    >>> len(frames)  # header + 48 bytes in 16-byte chunks
    4
    >>> asm = Assembler(max_bytes=1024)
    >>> done = [asm.feed(f) for f in frames][-1]
    >>> done.groups[""]["w"].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedloom.core.parameters import SUPPORTED_DTYPES, Parameters
from fedloom.errors import ValidationError
from fedloom.net.proto import fedloom_pb2 as pb
from fedloom.net.wire import DataFrame

__all__ = ["DEFAULT_CHUNK_BYTES", "Assembled", "Assembler", "MessageTooLarge", "encode_frames", "group_nbytes",
           "group_sizes"]

DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024
"""Data frame size: well under gRPC's 4 MB default message limit."""

Groups = Sequence[tuple[str, Parameters]]


class MessageTooLarge(ValidationError):
    """A message declares (or sends) more bytes than the receiver accepts."""


@dataclass
class Assembled:
    """A fully received message: its header and its arrays by group key (``""``: parameters)."""

    header: pb.Header
    groups: dict[str, Parameters] = field(default_factory=dict)
    nbytes: int = 0


def _le_bytes(arr: np.ndarray) -> memoryview:
    """A flat byte view of ``arr`` in little-endian C order (copies only if it must)."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return memoryview(arr.reshape(-1).view(np.uint8))  # type: ignore[arg-type]


def group_nbytes(groups: Groups) -> int:
    """Total raw payload bytes of ``groups``."""
    return sum(p.nbytes for _, p in groups)


def encode_frames(
    header: pb.Header, groups: Groups, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[pb.Frame | DataFrame]:
    """Fill ``header``'s array metadata and payload size, then yield it and the data frames lazily.

    Data frames are :class:`~fedloom.net.wire.DataFrame` s whose ``parts`` are views of the arrays (see
    :mod:`fedloom.net.wire`): nothing is copied here, each frame's bytes are copied once, into the wire
    buffer, when it is sent. So the arrays must not change while the frames are being sent.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be >= 1")
    del header.groups[:]
    for key, params in groups:
        group = header.groups.add(key=key)
        for name, arr in params.items():
            code = arr.dtype.str[1:]
            if code not in SUPPORTED_DTYPES:
                raise ValidationError(f"array {name!r} has unsupported dtype {arr.dtype}")
            group.arrays.add(name=name, dtype=code, shape=list(arr.shape))
    header.payload_size = group_nbytes(groups)
    yield pb.Frame(header=header)
    parts: list[memoryview] = []  # views of the arrays: the next frame's payload, copied once on sending
    filled = 0
    for _, params in groups:
        for arr in params.values():
            view = _le_bytes(arr)
            pos, n = 0, len(view)
            while pos < n:
                take = min(chunk_bytes - filled, n - pos)
                parts.append(view[pos : pos + take])
                filled += take
                pos += take
                if filled == chunk_bytes:
                    yield DataFrame(parts=parts)
                    parts, filled = [], 0
    if parts:
        yield DataFrame(parts=parts)


HeaderCheck = Callable[[pb.Header], None]


class Assembler:
    """Rebuild messages from frames, bounding their size and validating their structure.

    Args:
        max_bytes: Largest payload accepted; a larger declared size raises :class:`MessageTooLarge`
            before anything is allocated.
        check_header: Optional hook run on each header before its payload is read; raise to reject.

    After a header is rejected its data frames are skipped (counted, not stored), so the stream stays
    in sync and the sender's next message is read normally.
    """

    def __init__(self, *, max_bytes: int, check_header: HeaderCheck | None = None) -> None:
        self.max_bytes = max_bytes
        self.check_header = check_header
        self._header: pb.Header | None = None
        self._groups: dict[str, dict[str, np.ndarray]] = {}
        self._targets: list[np.ndarray] = []
        self._target_idx = 0
        self._target_pos = 0
        self._remaining = 0
        self._skip = 0

    @property
    def busy(self) -> bool:
        """True while a message's payload is still arriving (or being skipped)."""
        return self._header is not None or self._skip > 0

    def feed(self, frame: pb.Frame | DataFrame) -> Assembled | None:
        """Consume one frame; return the message it completes, if any."""
        which = frame.WhichOneof("body")
        if isinstance(frame, pb.Frame) and which == "header":
            return self._on_header(frame.header)
        if which == "data":
            return self._on_data(frame.data)
        raise ValidationError("empty frame")

    def _on_header(self, header: pb.Header) -> Assembled | None:
        if self.busy:
            self._reset()
            raise ValidationError("a new message started before the previous payload was complete")
        size = int(header.payload_size)
        if size > self.max_bytes:
            raise MessageTooLarge(f"message declares {size} bytes, more than the {self.max_bytes} allowed")
        try:
            layout = _layout(header)
            if sum(nb for *_, nb in layout) != size:
                raise ValidationError("payload_size does not match the arrays' dtypes and shapes")
            if self.check_header is not None:
                self.check_header(header)
        except ValidationError:
            self._skip = size
            raise
        self._header = header
        self._remaining = size
        self._groups = {}
        self._targets = []
        for key, name, dtype, shape, _ in layout:
            arr = np.empty(shape, dtype=dtype)
            self._groups.setdefault(key, {})[name] = arr
            if arr.nbytes:
                self._targets.append(arr.reshape(-1).view(np.uint8))
        for key in (g.key for g in header.groups):
            self._groups.setdefault(key, {})
        self._target_idx = self._target_pos = 0
        return self._finish() if size == 0 else None

    def _on_data(self, data: bytes | memoryview) -> Assembled | None:
        if self._skip > 0:
            if len(data) > self._skip:
                self._skip = 0
                raise ValidationError("more data than the rejected message declared")
            self._skip -= len(data)
            return None
        if self._header is None:
            raise ValidationError("data frame without a header")
        if len(data) > self._remaining:
            self._reset()
            raise ValidationError("more data than the header declared")
        src = memoryview(data)
        while len(src):
            target = self._targets[self._target_idx]
            take = min(len(src), target.size - self._target_pos)
            target[self._target_pos : self._target_pos + take] = np.frombuffer(src[:take], dtype=np.uint8)
            self._target_pos += take
            src = src[take:]
            if self._target_pos == target.size:
                self._target_idx += 1
                self._target_pos = 0
        self._remaining -= len(data)
        return self._finish() if self._remaining == 0 else None

    def _finish(self) -> Assembled:
        assert self._header is not None
        header = self._header
        groups = {key: Parameters(arrays) for key, arrays in self._groups.items()}
        out = Assembled(header, groups, int(header.payload_size))
        self._reset()
        return out

    def _reset(self) -> None:
        self._header = None
        self._groups = {}
        self._targets = []
        self._remaining = 0


def group_sizes(header: pb.Header) -> dict[str, int]:
    """Payload bytes per array group a header declares (``""``: parameters); raises on malformed metadata."""
    out: dict[str, int] = {}
    for key, *_, nbytes in _layout(header):
        out[key] = out.get(key, 0) + nbytes
    return out


def _layout(header: pb.Header) -> list[tuple[str, str, np.dtype, tuple[int, ...], int]]:
    """Check a header's array metadata; return ``(group, name, dtype, shape, nbytes)`` per array."""
    out = []
    keys: set[str] = set()
    for group in header.groups:
        if group.key in keys:
            raise ValidationError(f"duplicate array group {group.key!r}")
        keys.add(group.key)
        names: set[str] = set()
        for meta in group.arrays:
            if meta.name in names:
                raise ValidationError(f"duplicate array name {meta.name!r}")
            names.add(meta.name)
            if meta.dtype not in SUPPORTED_DTYPES:
                raise ValidationError(f"array {meta.name!r}: unsupported dtype {meta.dtype!r}")
            shape = tuple(int(d) for d in meta.shape)
            if any(d < 0 for d in shape):
                raise ValidationError(f"array {meta.name!r}: negative dimension in shape {shape}")
            dtype = np.dtype("<" + meta.dtype)
            if len(shape) > 32 or math.prod(d for d in shape if d) * dtype.itemsize > np.iinfo(np.intp).max:
                # even when empty: np.empty raises ValueError, which is not a rejection the server handles
                raise ValidationError(f"array {meta.name!r}: a shape of {len(shape)} dimensions numpy cannot hold")
            out.append((group.key, meta.name, dtype, shape, math.prod(shape) * dtype.itemsize))
    return out
