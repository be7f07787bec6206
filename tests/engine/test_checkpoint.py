from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.engine import load_checkpoint, save_checkpoint
from fedloom.engine.checkpoint import StoredRecord, restore_components
from fedloom.errors import ValidationError


def test_checkpoint_round_trip_keeps_everything(tmp_path):
    rng = np.random.default_rng(7)
    rng.random(3)  # advance: the restored generator must continue from here
    state = ServerState(
        parameters=Parameters({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(3, np.int64)}),
        round=4,
        rng=rng,
        buffers={"momentum": Parameters({"w": np.ones((2, 3))}), "c/client 7": Parameters({"x": np.zeros(2)})},
        values={"clip_norm": 0.75, "mode": "adaptive"},
    )
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, state, {"history": [{"round": 1, "metrics": {"loss": 1.0}}]})
    back, extra = load_checkpoint(path)
    assert back.round == 4 and back.values == {"clip_norm": 0.75, "mode": "adaptive"}
    assert back.parameters.names == ["w", "n"] and back.parameters["n"].shape == ()
    np.testing.assert_array_equal(back.parameters["w"], state.parameters["w"])
    assert set(back.buffers) == {"momentum", "c/client 7"}
    np.testing.assert_array_equal(back.buffers["momentum"]["w"], np.ones((2, 3)))
    assert back.rng.random() == rng.random()
    assert extra["history"][0]["metrics"]["loss"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]  # no temp files left behind


def test_client_state_store_round_trip_keeps_0d_shapes(tmp_path):
    from fedloom.core.client_state import ClientStateStore

    store = ClientStateStore()
    store.get("3")["residual"] = Parameters({"w": np.ones((2, 2), np.float32), "n": np.array(5, np.int64)})
    store.get("4")  # a client without state
    store.save(tmp_path / "clients.safetensors")
    back = ClientStateStore()
    back.load(tmp_path / "clients.safetensors")
    assert back.get("3")["residual"]["n"].shape == () and int(back.get("3")["residual"]["n"]) == 5
    np.testing.assert_array_equal(back.get("3")["residual"]["w"], np.ones((2, 2)))


# -- typed components -------------------------------------------------------------------------
class _Leaves(NamedTuple):
    vector: np.ndarray
    scalar_array: np.ndarray
    count_array: np.ndarray
    params: Parameters
    count: int
    ratio: float
    tiny: float
    flag: bool
    mode: str
    unset: int | None


@dataclass(frozen=True)
class _Frozen:
    clip: float
    history: np.ndarray
    inner: _Leaves | None = None


def _leaves(seed: int) -> _Leaves:
    rng = np.random.default_rng(seed)
    return _Leaves(
        vector=rng.normal(size=5),
        scalar_array=np.array(rng.normal(), np.float32),  # 0-d
        count_array=np.array(7, np.int64),  # 0-d integer
        params=Parameters({"w": rng.normal(size=(2, 3)).astype(np.float32), "n": np.array(4, np.int64)}),
        count=-3,
        ratio=0.1 + 0.2,  # not a short decimal: must come back bit for bit
        tiny=5e-324,
        flag=True,
        mode="adaptive",
        unset=None,
    )


def _every_kind() -> dict[str, object]:
    from fedloom.strategies.server_opts import AdaptiveState, EmptyState, MomentumState

    return {
        "leaves": _leaves(1),
        "frozen": _Frozen(clip=0.7, history=np.arange(3.0), inner=_leaves(2)),
        "empty": EmptyState(),
        "chain": (EmptyState(), MomentumState(np.ones(2)), AdaptiveState(np.zeros(2), np.full(2, 1e-6))),
    }


def _assert_same(a: object, b: object) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()  # type: ignore[union-attr]
    elif isinstance(a, Parameters):
        assert a.names == b.names  # type: ignore[attr-defined]
        for name in a:
            _assert_same(a[name], b[name])  # type: ignore[index]
    elif isinstance(a, tuple):
        assert len(a) == len(b)  # type: ignore[arg-type]
        for x, y in zip(a, b, strict=True):  # type: ignore[call-overload]
            _assert_same(x, y)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name))
    else:
        assert a == b


def _saved(tmp_path, components):  # noqa: ANN001, ANN202
    state = ServerState(parameters=Parameters({"w": np.zeros(2)}), components=dict(components))
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, state)
    return load_checkpoint(path)[0]


def test_components_round_trip_exactly_without_pickle(tmp_path):
    components = _every_kind()
    back = _saved(tmp_path, components)
    assert isinstance(back.components["leaves"], StoredRecord)
    assert back.components["leaves"].type_name == "_Leaves"
    restored = restore_components(_every_kind(), back.components)
    assert list(restored) == list(components)
    for name, value in components.items():
        _assert_same(restored[name], value)
    assert restored["leaves"].scalar_array.shape == () and restored["leaves"].params["n"].shape == ()
    # the file holds tensors and JSON only: field names and kinds are in the metadata
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ckpt.safetensors"), framework="np") as fh:
        meta = json.loads(fh.metadata()["fedloom"])
    leaves = meta["components"]["leaves"]
    assert [name for name, _ in leaves["fields"]] == list(_Leaves._fields)
    assert [spec["kind"] for _, spec in leaves["fields"]] == [
        "array", "array", "array", "parameters", "int", "float", "float", "bool", "str", "none"
    ]
    assert b"pickle" not in (tmp_path / "ckpt.safetensors").read_bytes()


def test_strategy_components_round_trip(tmp_path):
    from fedloom.privacy.dp import CentralDP
    from fedloom.strategies import FedAdam, FedAvgM, Scaffold

    glob = Parameters({"w": np.ones((2, 2), np.float32), "n": np.array(1, np.int64)})
    for strategy in (FedAdam(), FedAvgM(), Scaffold(), CentralDP(Scaffold(), noise_multiplier=1.0, clip=0.3)):
        state = strategy.initialize(glob)
        strategy.configure_fit(state, 1, ["0", "1", "2"])  # sets Scaffold's N and DP's cohort
        back = _saved(tmp_path, state.components)
        restored = restore_components(strategy.initialize(glob).components, back.components)
        for name, value in state.components.items():
            _assert_same(restored[name], value)


def test_loaded_components_can_be_saved_again_unchanged(tmp_path):
    once = _saved(tmp_path / "a", _every_kind())
    twice = _saved(tmp_path / "b", once.components)
    restored = restore_components(_every_kind(), twice.components)
    for name, value in _every_kind().items():
        _assert_same(restored[name], value)


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ({}, "unexpected: \\['opt'\\]"),
        ({"opt": "AdaptiveState", "other": "MomentumState"}, "missing: \\['other'\\]"),
        ({"opt": "MomentumState"}, "holds a AdaptiveState, the strategy expects a MomentumState"),
        ({"opt": "FakeAdaptive"}, "fields \\['m', 'v'\\], the strategy expects \\['m', 'v', 'step'\\]"),
        ({"opt": "AdaptiveState3"}, "float64\\[2\\] array, the strategy expects float64\\[3\\]"),
    ],
)
def test_mismatched_components_are_validation_errors(tmp_path, template, match):
    from fedloom.strategies.server_opts import AdaptiveState, MomentumState

    class FakeAdaptive(NamedTuple):  # same class name trick: a checkpoint from another field layout
        m: np.ndarray
        v: np.ndarray
        step: int

    FakeAdaptive.__qualname__ = "AdaptiveState"
    make = {
        "AdaptiveState": AdaptiveState(np.zeros(2), np.ones(2)),
        "AdaptiveState3": AdaptiveState(np.zeros(3), np.ones(3)),
        "MomentumState": MomentumState(np.zeros(2)),
        "FakeAdaptive": FakeAdaptive(np.zeros(2), np.ones(2), 0),
    }
    back = _saved(tmp_path, {"opt": AdaptiveState(np.zeros(2), np.ones(2))})
    with pytest.raises(ValidationError, match=match):
        restore_components({k: make[v] for k, v in template.items()}, back.components)


def test_resuming_with_another_strategy_is_a_validation_error(tmp_path):
    from fedloom.engine import FederatedLoop
    from fedloom.strategies import FedAdam, FedAvgM

    glob = Parameters({"w": np.zeros(3)})
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, FedAdam().initialize(glob))
    loop = FederatedLoop(FedAvgM(), pool=None, num_rounds=2, checkpoint_path=path)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cannot resume FedAvgM.*AdaptiveState.*MomentumState"):
        loop.resume_state()
    assert FederatedLoop(FedAdam(), pool=None, num_rounds=2, checkpoint_path=path).resume_state()  # type: ignore[arg-type]


def test_unsupported_component_fields_are_refused_when_saving(tmp_path):
    class Bad(NamedTuple):
        table: dict

    with pytest.raises(TypeError, match="cannot checkpoint a dict"):
        _saved(tmp_path, {"bad": Bad({"a": 1})})
