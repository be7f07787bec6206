"""Crash-consistent checkpoints of the server state.

One file per run: a safetensors file whose tensors are the global parameters and every named
buffer, and whose metadata holds the round, the RNG state, scalar state and the run history as
JSON. It is written to a temporary file, flushed to disk and renamed over the previous one, so a
crash at any moment leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.errors import ValidationError

__all__ = ["save_checkpoint", "load_checkpoint"]

_SEP = "\x1f"  # unit separator: cannot appear in names from Python identifiers / state_dict keys


def save_checkpoint(path: str | Path, state: ServerState, extra: dict[str, Any] | None = None) -> None:
    """Atomically write ``state`` (and JSON-able ``extra``, e.g. history) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    layout: dict[str, list[tuple[str, list[int]]]] = {}
    groups = {"parameters": state.parameters, **{f"buffer:{g}": p for g, p in state.buffers.items()}}
    for prefix, params in groups.items():
        # exact shapes are kept in the layout: safetensors stores 0-d arrays as shape (1,)
        layout[prefix] = [(name, list(arr.shape)) for name, arr in params.items()]
        for name, arr in params.items():
            tensors[f"{prefix}{_SEP}{name}"] = np.ascontiguousarray(arr)
    meta = {
        "round": state.round,
        "rng": state.rng.bit_generator.state,
        "rng_kind": type(state.rng.bit_generator).__name__,
        "values": state.values,
        "layout": layout,
        "extra": extra or {},
    }
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"fedloom": json.dumps(meta)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | Path) -> tuple[ServerState, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns the state and ``extra``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        raw = (fh.metadata() or {}).get("fedloom")
    if raw is None:
        raise ValidationError(f"{path} is not a fedloom checkpoint")
    meta = json.loads(raw)
    tensors = load_file(str(path))

    def group(prefix: str, entries: list[tuple[str, list[int]]]) -> Parameters:
        return Parameters({n: tensors[f"{prefix}{_SEP}{n}"].reshape(shape) for n, shape in entries})

    layout = meta["layout"]
    bit_gen = getattr(np.random, meta.get("rng_kind", "PCG64"))()
    bit_gen.state = meta["rng"]
    state = ServerState(
        parameters=group("parameters", layout["parameters"]),
        round=int(meta["round"]),
        rng=np.random.Generator(bit_gen),
        buffers={k.split(":", 1)[1]: group(k, v) for k, v in layout.items() if k.startswith("buffer:")},
        values=dict(meta["values"]),
    )
    return state, dict(meta.get("extra") or {})
