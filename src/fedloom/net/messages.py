"""Convert fedloom's task messages to and from the wire format.

:class:`~fedloom.core.types.FitIns`, :class:`~fedloom.core.types.FitRes`,
:class:`~fedloom.core.types.EvaluateIns` and :class:`~fedloom.core.types.EvaluateRes` become a
protobuf ``Header`` (kind, task id, scalar config or metrics, example count, loss, and the names,
dtypes and shapes of every array) followed by the arrays' raw bytes (see :mod:`fedloom.net.chunking`).
``extras`` travel as named array groups beside the parameters, with every dtype preserved
(integer masks and shares for secure aggregation included). Nothing is pickled.

Example:
    >>> import numpy as np
    >>> from fedloom.core.parameters import Parameters
    >>> from fedloom.core.types import FitRes
    >>> from fedloom.net.chunking import Assembler
    >>> res = FitRes(Parameters({"w": np.ones(3, np.float32)}), 10, {"train_loss": 0.5})
    >>> asm = Assembler(max_bytes=1 << 20)
    >>> done = [asm.feed(f) for f in encode_message("t1", res)][-1]
    >>> task_id, back = decode_message(done)
    >>> task_id, back.num_examples, back.metrics
    ('t1', 10, {'train_loss': 0.5})
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fedloom.core.parameters import Parameters
from fedloom.core.types import EvaluateIns, EvaluateRes, FitIns, FitRes, Scalar
from fedloom.errors import ValidationError
from fedloom.net.chunking import DEFAULT_CHUNK_BYTES, Assembled, encode_frames
from fedloom.net.proto import fedloom_pb2 as pb
from fedloom.net.wire import DataFrame

__all__ = ["Message", "RemoteError", "encode_message", "encode_error", "decode_message", "scalars_to_proto",
           "scalars_from_proto"]


@dataclass(frozen=True)
class RemoteError:
    """A client's report that it could not run a task (its exception, as text)."""

    error: str


Message = FitIns | FitRes | EvaluateIns | EvaluateRes | RemoteError

_PARAMS = ""  # group key of a message's parameters; extras use their own (non-empty) names

_KINDS: dict[type, Any] = {FitIns: pb.FIT_INS, EvaluateIns: pb.EVALUATE_INS, FitRes: pb.FIT_RES,
                           EvaluateRes: pb.EVALUATE_RES}


def scalars_to_proto(values: Mapping[str, Scalar], target) -> None:  # noqa: ANN001 - a protobuf map field
    """Write a config/metrics dict into a protobuf ``map<string, Scalar>``."""
    for key, value in values.items():
        if not isinstance(key, str):
            raise ValidationError(f"config/metrics keys must be str, got {key!r}")
        slot = target[key]
        if isinstance(value, bool):
            slot.b = value
        elif isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise ValidationError(f"{key!r}: integer {value} does not fit in 64 bits")
            slot.i = value
        elif isinstance(value, float):
            slot.d = value
        elif isinstance(value, str):
            slot.s = value
        else:
            # numpy scalars are common in metrics: accept them by their Python value
            item = getattr(value, "item", None)
            if item is None:
                raise ValidationError(f"{key!r}: {type(value).__name__} is not a bool/int/float/str scalar")
            scalars_to_proto({key: item()}, target)


def scalars_from_proto(source) -> dict[str, Scalar]:  # noqa: ANN001 - a protobuf map field
    """Read a protobuf ``map<string, Scalar>`` into a dict (keys sorted for determinism)."""
    out: dict[str, Scalar] = {}
    for key in sorted(source):
        scalar = source[key]
        which = scalar.WhichOneof("value")
        if which is None:
            raise ValidationError(f"{key!r}: empty scalar")
        out[key] = getattr(scalar, which)
    return out


def encode_message(
    task_id: str, message: FitIns | FitRes | EvaluateIns | EvaluateRes, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[pb.Frame | DataFrame]:
    """Frames of one task or result (lazily produced; the arrays are not copied up front)."""
    kind = _KINDS.get(type(message))
    if kind is None:
        raise TypeError(f"cannot send a {type(message).__name__}")
    header = pb.Header(task_id=task_id, kind=kind)
    if isinstance(message, (FitIns, EvaluateIns)):
        scalars_to_proto(message.config, header.config)
    else:
        scalars_to_proto(message.metrics, header.config)
        header.num_examples = int(message.num_examples)
    if isinstance(message, EvaluateRes):
        header.loss = float(message.loss)
        groups: list[tuple[str, Parameters]] = []
    else:
        groups = [(_PARAMS, message.parameters)]
    for name, extra in getattr(message, "extras", {}).items():
        if not name:
            raise ValidationError("extras names must be non-empty")
        groups.append((name, extra))
    return encode_frames(header, groups, chunk_bytes=chunk_bytes)


def encode_error(task_id: str, error: str) -> Iterator[pb.Frame | DataFrame]:
    """Frames reporting that a task failed on the client."""
    return encode_frames(pb.Header(task_id=task_id, kind=pb.ERROR, error=error[:2000]), [])


def decode_message(done: Assembled) -> tuple[str, Message]:
    """Turn an assembled message back into ``(task_id, FitIns | FitRes | EvaluateIns | EvaluateRes | RemoteError)``."""
    header, groups = done.header, dict(done.groups)
    kind = header.kind
    if kind == pb.ERROR:
        return header.task_id, RemoteError(header.error or "unknown client error")
    config = scalars_from_proto(header.config)
    if kind == pb.EVALUATE_RES:
        if groups:
            raise ValidationError("an evaluation result carries no arrays")
        if header.num_examples < 0:
            raise ValidationError(f"num_examples must be >= 0, got {header.num_examples}")
        return header.task_id, EvaluateRes(float(header.loss), int(header.num_examples), config)
    if kind not in (pb.FIT_INS, pb.EVALUATE_INS, pb.FIT_RES):
        raise ValidationError(f"unknown message kind {kind}")
    if _PARAMS not in groups:
        raise ValidationError("message has no parameters")
    params = groups.pop(_PARAMS)
    if kind == pb.FIT_INS:
        return header.task_id, FitIns(params, config, groups)
    if kind == pb.EVALUATE_INS:
        if groups:
            raise ValidationError("an evaluation task carries no extras")
        return header.task_id, EvaluateIns(params, config)
    if header.num_examples < 0:
        raise ValidationError(f"num_examples must be >= 0, got {header.num_examples}")
    return header.task_id, FitRes(params, int(header.num_examples), config, groups)
