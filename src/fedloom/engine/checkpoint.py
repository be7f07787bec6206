"""Crash-consistent checkpoints of the server state.

One file per run: a safetensors file whose tensors are the global parameters, every named buffer
and every array of the typed components, and whose metadata holds the round, the RNG state, scalar
state, the components' structure and the run history as JSON. It is written to a temporary file,
flushed to disk and renamed over the previous one, and the directory is flushed after the rename
(:func:`fedloom.core.atomic.atomic_write`), so a crash at any moment leaves either the old or the
new checkpoint, never a torn one, and a completed save survives a power loss.

A simulation's per-client state (:class:`~fedloom.core.client_state.ClientStateStore`: SCAFFOLD's
``c_i``, DP-SGD step counts, error-feedback residuals) is written into the same file, in the same
write (``client_states=``), so the server state and the clients' state can never be a round apart;
:func:`load_client_states` reads it back.

Components (``ServerState.components``: ``NamedTuple`` or frozen-dataclass records such as a
server optimizer's ``AdaptiveState(m, v)``) are stored without pickle, field by field: each array
(``np.ndarray``, or each entry of a :class:`Parameters`) is a safetensors tensor, with its exact
shape (0-d included) in the metadata; ``int``, ``float``, ``bool``, ``str`` and ``None`` are JSON
values (floats round-trip exactly); the metadata keeps every record's type name, field names and
the kind of each field. Nested records and tuples (a ``chain`` of optimizers) are allowed.

Reading back cannot create the classes (that would need importing by name), so
:func:`load_checkpoint` returns each record as a :class:`StoredRecord` (type name and field
values), and :func:`restore_components` rebuilds the typed values against a template, the
components of ``strategy.initialize(parameters)``: same type, fields filled from the checkpoint.
A missing or extra component or field, another record type, or an array of another shape or dtype
is a :class:`~fedloom.errors.ValidationError`. :meth:`FederatedLoop.resume_state
<fedloom.engine.loop.FederatedLoop.resume_state>` does both steps.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from fedloom.core.atomic import atomic_write
from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import SUPPORTED_DTYPES, Parameters
from fedloom.core.strategy import ServerState
from fedloom.errors import ValidationError

__all__ = ["save_checkpoint", "load_checkpoint", "load_client_states", "restore_components", "StoredRecord"]

_SEP = "\x1f"  # unit separator: cannot appear in names from Python identifiers / state_dict keys
_COMPONENT = "component"
_CLIENTS = "clients"


@dataclass(frozen=True)
class StoredRecord:
    """A component record as read from a checkpoint, before :func:`restore_components` types it.

    Attributes:
        type_name: The ``__qualname__`` of the class it was saved from (e.g. ``"AdaptiveState"``).
        fields: Field name to value, in the class's order: arrays, :class:`Parameters`, scalars,
            ``None``, nested :class:`StoredRecord` or tuples.
    """

    type_name: str
    fields: dict[str, Any]


def save_checkpoint(
    path: str | Path,
    state: ServerState,
    extra: dict[str, Any] | None = None,
    *,
    client_states: ClientStateStore | None = None,
) -> None:
    """Atomically write ``state`` (and JSON-able ``extra``, e.g. history, and the simulated clients'
    ``client_states``) to ``path``: one file, one rename."""
    path = Path(path)
    tensors: dict[str, np.ndarray] = {}
    layout: dict[str, list[tuple[str, list[int]]]] = {}
    groups = {"parameters": state.parameters, **{f"buffer:{g}": p for g, p in state.buffers.items()}}
    for prefix, params in groups.items():
        # exact shapes are kept in the layout: safetensors stores 0-d arrays as shape (1,)
        layout[prefix] = [(name, list(arr.shape)) for name, arr in params.items()]
        for name, arr in params.items():
            tensors[f"{prefix}{_SEP}{name}"] = np.ascontiguousarray(arr)
    components = {name: _encode(value, tensors, repr(name)) for name, value in state.components.items()}
    meta = {
        "round": state.round,
        "rng": state.rng.bit_generator.state,
        "rng_kind": type(state.rng.bit_generator).__name__,
        "values": state.values,
        "layout": layout,
        "components": components,
        "extra": extra or {},
    }
    if client_states is not None:
        client_tensors, client_layout = client_states.to_tensors(prefix=_CLIENTS + _SEP)
        tensors.update(client_tensors)
        meta["client_states"] = client_layout
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"fedloom": json.dumps(meta)}), prefix=".ckpt-")


def load_client_states(path: str | Path, store: ClientStateStore) -> bool:
    """Fill ``store`` with the client states saved in the checkpoint at ``path``, if it holds any.

    Returns ``False`` (and leaves ``store`` alone) for a checkpoint written without ``client_states``.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        raw = (fh.metadata() or {}).get("fedloom")
    if raw is None:
        raise ValidationError(f"{path} is not a fedloom checkpoint")
    layout = json.loads(raw).get("client_states")
    if layout is None:
        return False
    store.load_tensors(load_file(str(path)), layout, prefix=_CLIENTS + _SEP)
    return True


def load_checkpoint(path: str | Path) -> tuple[ServerState, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns the state and ``extra``.

    The state's ``components`` hold :class:`StoredRecord` values where the saved state had
    records; pass them through :func:`restore_components` before running the strategy on it.
    """
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
        components={name: _decode(spec, tensors, repr(name)) for name, spec in (meta.get("components") or {}).items()},
    )
    return state, dict(meta.get("extra") or {})


def restore_components(template: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Typed components from a checkpoint's, using the strategy's fresh ones as the template.

    Args:
        template: ``strategy.initialize(parameters).components``: the types and field names.
        stored: The ``components`` of a state from :func:`load_checkpoint`.

    Returns:
        One value per component of ``template``, of the template's type, fields from ``stored``.

    Raises:
        ValidationError: a component or field is missing or extra, a record has another type, or a
            value has another kind (array, parameters, scalar, record, tuple), shape or dtype.

    Example:
        >>> from fedloom.strategies.server_opts import MomentumState
        >>> import numpy as np
        >>> stored = {"server_opt": StoredRecord("MomentumState", {"trace": np.ones(2)})}
        >>> restore_components({"server_opt": MomentumState(np.zeros(2))}, stored)["server_opt"].trace.tolist()
        [1.0, 1.0]
    """
    missing = [name for name in template if name not in stored]
    extra = [name for name in stored if name not in template]
    if missing or extra:
        raise ValidationError(
            f"the checkpoint's components {sorted(stored)} do not match the strategy's {sorted(template)}"
            + (f"; missing: {missing}" if missing else "")
            + (f"; unexpected: {extra}" if extra else "")
            + (" (a checkpoint without components may predate typed server state)" if not stored else "")
        )
    return {name: _rebuild(template[name], stored[name], repr(name)) for name in template}


# -- component encoding ---------------------------------------------------------------------
def _is_record(value: object) -> bool:
    if isinstance(value, tuple):
        return hasattr(type(value), "_fields")
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _record_fields(value: Any) -> list[str]:
    if isinstance(value, tuple):
        return list(getattr(type(value), "_fields"))  # noqa: B009 (a NamedTuple's, unknown to the type checker)
    return [f.name for f in dataclasses.fields(value)]


def _add_tensor(arr: np.ndarray, tensors: dict[str, np.ndarray], where: str) -> dict[str, Any]:
    if arr.dtype.str[1:] not in SUPPORTED_DTYPES:
        raise TypeError(f"component field {where}: arrays of dtype {arr.dtype} cannot be checkpointed")
    key = f"{_COMPONENT}{_SEP}{len(tensors)}"  # unique: the count only grows; other keys have other prefixes
    tensors[key] = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
    return {"tensor": key, "dtype": arr.dtype.str[1:], "shape": list(arr.shape)}


def _encode(value: Any, tensors: dict[str, np.ndarray], where: str) -> dict[str, Any]:
    """The JSON description of one value; its arrays are added to ``tensors``."""
    if value is None:
        return {"kind": "none"}
    if isinstance(value, (bool, np.bool_)):
        return {"kind": "bool", "value": bool(value)}
    if isinstance(value, (int, np.integer)):
        return {"kind": "int", "value": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"kind": "float", "value": float(value)}
    if isinstance(value, str):
        return {"kind": "str", "value": value}
    if isinstance(value, np.ndarray):
        return {"kind": "array", **_add_tensor(value, tensors, where)}
    if isinstance(value, Parameters):
        entries = [[name, _add_tensor(arr, tensors, f"{where}[{name!r}]")] for name, arr in value.items()]
        return {"kind": "parameters", "entries": entries}
    if isinstance(value, StoredRecord):  # loaded and not restored: written back as it was read
        fields = [[n, _encode(v, tensors, f"{where}.{n}")] for n, v in value.fields.items()]
        return {"kind": "record", "type": value.type_name, "fields": fields}
    if _is_record(value):
        fields = [[n, _encode(getattr(value, n), tensors, f"{where}.{n}")] for n in _record_fields(value)]
        return {"kind": "record", "type": type(value).__qualname__, "fields": fields}
    if isinstance(value, tuple):
        return {"kind": "tuple", "items": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    raise TypeError(
        f"component {where}: cannot checkpoint a {type(value).__name__}; fields must be np.ndarray, "
        "Parameters, int, float, bool, str, None, or NamedTuple/dataclass records and tuples of them"
    )


def _decode(spec: Any, tensors: Mapping[str, np.ndarray], where: str) -> Any:
    """Inverse of :func:`_encode`: records come back as :class:`StoredRecord`."""
    try:
        kind = spec["kind"]
        if kind == "none":
            return None
        if kind in ("bool", "int", "float", "str"):
            caster: Any = {"bool": bool, "int": int, "float": float, "str": str}[kind]
            return caster(spec["value"])
        if kind == "array":
            return _tensor(spec, tensors)
        if kind == "parameters":
            return Parameters({str(name): _tensor(entry, tensors) for name, entry in spec["entries"]})
        if kind == "record":
            fields = {str(n): _decode(s, tensors, f"{where}.{n}") for n, s in spec["fields"]}
            return StoredRecord(str(spec["type"]), fields)
        if kind == "tuple":
            return tuple(_decode(s, tensors, f"{where}[{i}]") for i, s in enumerate(spec["items"]))
    except ValidationError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(f"malformed checkpoint component {where}: {type(exc).__name__}: {exc}") from exc
    raise ValidationError(f"malformed checkpoint component {where}: unknown kind {kind!r}")


def _tensor(spec: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    arr = tensors[spec["tensor"]]
    if arr.dtype.str[1:] != spec["dtype"]:
        raise ValueError(f"tensor {spec['tensor']!r} has dtype {arr.dtype}, the metadata says {spec['dtype']}")
    return arr.reshape([int(d) for d in spec["shape"]])


def _kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, StoredRecord) or _is_record(value):
        return "record"
    if isinstance(value, np.ndarray):
        return "array"
    if isinstance(value, Parameters):
        return "parameters"
    if isinstance(value, tuple):
        return "tuple"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def _rebuild(template: Any, stored: Any, where: str) -> Any:
    """``stored`` as a value shaped like ``template`` (recursively for records and tuples)."""
    t_kind, s_kind = _kind(template), _kind(stored)
    if t_kind == "none":  # an optional field not set yet: any plain value fits, records cannot be typed
        if s_kind in ("record", "tuple"):
            raise ValidationError(f"component {where}: the checkpoint holds a {s_kind} where the strategy has None")
        return stored
    if s_kind == "none" and t_kind not in ("record", "tuple"):
        return None  # an optional field that was not set when the checkpoint was written
    if s_kind != t_kind:
        raise ValidationError(f"component {where}: the checkpoint holds a {s_kind}, the strategy expects a {t_kind}")
    if t_kind == "record":
        type_name = type(template).__qualname__
        if stored.type_name != type_name:
            raise ValidationError(
                f"component {where}: the checkpoint holds a {stored.type_name}, the strategy expects a {type_name}"
            )
        names = _record_fields(template)
        if list(stored.fields) != names:
            raise ValidationError(
                f"component {where} ({type_name}): the checkpoint has fields {list(stored.fields)}, "
                f"the strategy expects {names}"
            )
        values = {n: _rebuild(getattr(template, n), stored.fields[n], f"{where}.{n}") for n in names}
        if isinstance(template, tuple):
            return type(template)(**values)
        return dataclasses.replace(template, **values)
    if t_kind == "tuple":
        if len(stored) != len(template):
            raise ValidationError(
                f"component {where}: the checkpoint holds {len(stored)} entries, the strategy expects {len(template)}"
            )
        return tuple(_rebuild(t, s, f"{where}[{i}]") for i, (t, s) in enumerate(zip(template, stored, strict=True)))
    if t_kind == "array":
        if stored.shape != template.shape or stored.dtype.str[1:] != template.dtype.str[1:]:
            raise ValidationError(
                f"component {where}: the checkpoint holds a {stored.dtype}{list(stored.shape)} array, "
                f"the strategy expects {template.dtype}{list(template.shape)}"
            )
        return stored
    if t_kind == "parameters":
        if stored.spec() != template.spec():
            raise ValidationError(
                f"component {where}: the checkpoint holds {stored!r}, the strategy expects {template!r}"
            )
        return stored
    return stored

