"""Vectors as CKKS ciphertext chunks carried in ordinary :class:`~fedloom.core.parameters.Parameters`.

A flat float vector is split into chunks of the slot count; each chunk is one CKKS ciphertext,
serialized by TenSEAL and carried as a uint8 array named ``he.00000``, ``he.00001``, ... so every
transport moves it like any other payload (and counts its bytes).

Example:
    >>> import numpy as np
    >>> ctx = make_context(poly_degree=8192)  # doctest: +SKIP
    >>> payload = encrypt_vector(ctx, np.arange(5.0))  # doctest: +SKIP
    >>> decrypt_vector(ctx, payload, 5).round(6).tolist()  # doctest: +SKIP
    [0.0, 1.0, 2.0, 3.0, 4.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.errors import ValidationError
from fedloom.privacy.he.context import require_tenseal, slot_count

__all__ = ["chunk_names", "encrypt_vector", "decrypt_vector", "load_chunks", "serialize_chunks", "sum_encrypted"]

PREFIX = "he."


def chunk_names(size: int, slots: int) -> list[str]:
    """Names of the ciphertexts that carry a vector of ``size`` values."""
    return [f"{PREFIX}{i:05d}" for i in range(max(1, math.ceil(size / slots)))]


def encrypt_vector(context: Any, vector: np.ndarray) -> Parameters:
    """Encrypt ``vector`` chunk by chunk; returns the serialized ciphertexts."""
    ts = require_tenseal()
    vector = np.asarray(vector, dtype=np.float64).reshape(-1)
    slots = slot_count(context)
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(chunk_names(vector.size, slots)):
        chunk = vector[i * slots : (i + 1) * slots]
        data = ts.ckks_vector(context, chunk.tolist()).serialize()
        out[name] = np.frombuffer(data, dtype=np.uint8).copy()
    return Parameters(out)


def load_chunks(context: Any, payload: Parameters, size: int) -> list[Any]:
    """Parse a payload of ciphertexts for a vector of ``size`` values; raise if malformed."""
    ts = require_tenseal()
    slots = slot_count(context)
    names = chunk_names(size, slots)
    if list(payload) != names:
        raise ValidationError(f"expected ciphertexts {names[0]}..{names[-1]}, got {len(payload)} arrays")
    chunks = []
    for i, name in enumerate(names):
        arr = payload[name]
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise ValidationError(f"{name!r}: ciphertexts travel as 1-D uint8, got {arr.dtype}{list(arr.shape)}")
        try:
            vec = ts.ckks_vector_from(context, arr.tobytes())
        except Exception as exc:
            raise ValidationError(f"{name!r}: not a CKKS ciphertext ({exc})") from exc
        want = min(slots, size - i * slots)
        if vec.size() != want:
            raise ValidationError(f"{name!r}: holds {vec.size()} values, expected {want}")
        chunks.append(vec)
    return chunks


def sum_encrypted(context: Any, payloads: Sequence[Parameters], size: int) -> Parameters:
    """Add ciphertext payloads without decrypting (needs only a public context)."""
    if not payloads:
        raise ValidationError("nothing to sum")
    total = load_chunks(context, payloads[0], size)
    for payload in payloads[1:]:
        for acc, vec in zip(total, load_chunks(context, payload, size), strict=True):
            acc.add_(vec)
    return serialize_chunks(context, total, size)


def serialize_chunks(context: Any, chunks: Sequence[Any], size: int) -> Parameters:
    """Ciphertext objects back into a payload of uint8 arrays."""
    names = chunk_names(size, slot_count(context))
    return Parameters(
        {n: np.frombuffer(c.serialize(), dtype=np.uint8).copy() for n, c in zip(names, chunks, strict=True)}
    )


def decrypt_vector(context: Any, payload: Parameters, size: int) -> np.ndarray:
    """Decrypt a payload of ciphertexts (needs the secret context) into a float64 vector."""
    if not context.is_private():
        raise ValidationError("decryption needs the secret context")
    chunks = load_chunks(context, payload, size)
    return np.concatenate([np.asarray(c.decrypt(), dtype=np.float64) for c in chunks])
