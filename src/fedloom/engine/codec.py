"""The round loop's transport hook: transform what goes out to clients and what comes back.

A :class:`RoundCodec` lets the loop compress the broadcast (e.g. the global model in float16) and
decode compressed client results *before* they are validated against the global model's spec, so
a decoded result reaches any strategy (FedAvg, FedOpt, robust aggregators) as an ordinary
``FitRes`` and every backend (inline, Ray, gRPC) gets the same treatment. A result that fails to
decode becomes a failure of that client, with the reason.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure
from fedloom.core.types import ClientId, FitRes

__all__ = ["RoundCodec", "encode_broadcast", "decode_results"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@runtime_checkable
class RoundCodec(Protocol):
    """Encodes the server's broadcast and decodes clients' fit results."""

    def encode_broadcast(self, parameters: Parameters) -> Parameters:
        """What clients receive instead of ``parameters`` (return it unchanged to send as is)."""
        ...

    def decode_result(self, res: FitRes, reference: Parameters) -> FitRes:
        """Turn a client's (compressed) result into full parameters shaped like ``reference``.

        Raises:
            ValidationError: the payload is malformed.
        """
        ...


def encode_broadcast(codec: RoundCodec, tasks: Sequence[tuple[ClientId, T]]) -> list[tuple[ClientId, T]]:
    """Apply ``codec.encode_broadcast`` to each task's parameters, encoding each object once."""
    cache: dict[int, Parameters] = {}
    out: list[tuple[ClientId, T]] = []
    for cid, ins in tasks:
        params: Any = ins.parameters  # type: ignore[attr-defined]
        key = id(params)
        if key not in cache:
            cache[key] = codec.encode_broadcast(params)
        out.append((cid, dataclasses.replace(ins, parameters=cache[key])))  # type: ignore[type-var]
    return out


def decode_results(
    codec: RoundCodec, results: Sequence[tuple[ClientId, FitRes]], reference: Parameters
) -> tuple[list[tuple[ClientId, FitRes]], list[Failure]]:
    """Decode every result; the ones that fail to decode become failures of their client."""
    decoded: list[tuple[ClientId, FitRes]] = []
    failures: list[Failure] = []
    for cid, res in results:
        try:
            if not isinstance(res, FitRes):
                raise TypeError(f"fit must return FitRes, got {type(res).__name__}")
            decoded.append((cid, codec.decode_result(res, reference)))
        except Exception as exc:  # a malformed payload is that client's failure, not the round's
            log.warning("could not decode the update of client %s: %s", cid, exc)
            failures.append(Failure(cid, f"undecodable update: {type(exc).__name__}: {exc}"))
    return decoded, failures
