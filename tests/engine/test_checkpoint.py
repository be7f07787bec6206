import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.engine import load_checkpoint, save_checkpoint


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
