"""Digests of what the ledger records: canonical JSON, model parameters and client results.

A digest covers names, dtypes, shapes and the raw little-endian bytes of every array, in order, so
two different models (or a renamed or reshaped array) never share a digest. The bytes are hashed
as they are (float32 for models), without copies for contiguous arrays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitRes

__all__ = ["canonical_json", "parameters_digest", "result_digest", "sha256_hex"]


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8 (what is hashed and signed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _update(h: Any, name: str, arr: np.ndarray) -> None:
    a = np.ascontiguousarray(arr)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    h.update(canonical_json([name, a.dtype.str, list(a.shape)]))
    h.update(a.reshape(-1).view(np.uint8))


def parameters_digest(params: Mapping[str, np.ndarray]) -> str:
    """Hex SHA-256 over every array of ``params`` (name, dtype, shape, bytes), by name: the same model
    written in another order (a safetensors file sorts its tensors) has the same digest."""
    h = hashlib.sha256(b"fedloom.parameters.v1\n")
    for name in sorted(params):
        _update(h, name, params[name])
    return h.hexdigest()


def result_digest(res: FitRes) -> str:
    """Hex SHA-256 of what a client sent for one task: its parameters, then its extras by name
    (under SecAgg+ the masked vector rides in the extras), then its example count."""
    h = hashlib.sha256(b"fedloom.fitres.v1\n")
    for name in sorted(res.parameters):
        _update(h, name, res.parameters[name])
    for extra in sorted(res.extras):
        group: Parameters = res.extras[extra]
        for name in sorted(group):
            _update(h, f"{extra}/{name}", group[name])
    h.update(canonical_json(["num_examples", int(res.num_examples)]))
    return h.hexdigest()
