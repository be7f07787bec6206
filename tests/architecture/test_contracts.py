"""Contract tests, parametrised over every registry: whatever registers itself must keep the promise
of its extension point (a new codec, backend or strategy is tested the moment it registers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedloom import Client, EvaluateIns, EvaluateRes, FitIns, FitRes, Parameters, RunConfig, run_simulation
from fedloom.backends import BACKENDS, make_pool
from fedloom.compression import CODECS
from fedloom.errors import ValidationError
from fedloom.strategies import STRATEGIES

SPEC_PARAMS = Parameters({"w": np.zeros((3, 4), np.float32), "b": np.zeros(4, np.float32)})


# -- codecs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in CODECS.names() if n != "none"])
def test_every_codec_round_trips(name: str) -> None:
    codec = CODECS.get(name)(topk_fraction=1.0, quant_block=0)
    rng = np.random.default_rng(0)
    update = Parameters({k: rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in SPEC_PARAMS.items()})
    decoded = codec.decode(codec.encode(update, rng=np.random.default_rng(1)), SPEC_PARAMS.spec())
    assert decoded.names == update.names
    for k in update:
        assert decoded[k].shape == update[k].shape
        # every built-in codec is exact up to its quantization step (q4: 1/7 of the tensor's range)
        assert np.abs(decoded[k] - update[k]).max() <= 0.2 * np.abs(update[k]).max() + 1e-6


@pytest.mark.parametrize("name", [n for n in CODECS.names() if n != "none"])
@pytest.mark.parametrize("damage", ["drop_name", "wrong_dtype", "nan", "truncate"])
def test_every_codec_rejects_malformed_payloads(name: str, damage: str) -> None:
    codec = CODECS.get(name)(topk_fraction=0.5, quant_block=0)
    update = Parameters({k: np.full(v.shape, 0.05, np.float32) for k, v in SPEC_PARAMS.items()})
    payload = dict(codec.encode(update, rng=np.random.default_rng(1)).items())
    key = sorted(payload)[0]
    if damage == "drop_name":
        del payload[key]
    elif damage == "wrong_dtype":
        payload[key] = payload[key].astype(np.complex64)
    elif damage == "nan":
        payload = {k: np.full(v.shape, np.nan, np.float32) for k, v in payload.items()}
    else:
        payload[key] = payload[key].reshape(-1)[:-1] if payload[key].size > 1 else payload[key].reshape(-1)[:0]
    with pytest.raises(ValidationError):
        codec.decode(Parameters(payload), SPEC_PARAMS.spec())


# -- backends -----------------------------------------------------------------------------------
class _Echo(Client):
    """Adds its id to every weight; client "2" always fails."""

    def __init__(self, cid: str) -> None:
        self.cid = cid

    def get_parameters(self, config):  # noqa: ANN001, ANN201
        return SPEC_PARAMS

    def fit(self, parameters, config):  # noqa: ANN001, ANN201
        if self.cid == "2":
            raise RuntimeError("client 2 is broken")
        return FitRes(Parameters({k: v + float(self.cid) for k, v in parameters.items()}), 10 + int(self.cid),
                      {"seen_round": config.get("round", -1)})

    def evaluate(self, parameters, config):  # noqa: ANN001, ANN201
        return EvaluateRes(float(self.cid), 5)


def _backend_params() -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n == "ray" else n for n in BACKENDS.names()]


@pytest.mark.parametrize("name", _backend_params())
def test_every_backend_passes_the_client_pool_suite(name: str) -> None:
    pool = make_pool(name, _Echo, 4)
    try:
        assert list(pool.available()) == ["0", "1", "2", "3"]
        tasks = [(cid, FitIns(SPEC_PARAMS, {"round": 7})) for cid in ["3", "2", "0"]]
        fit = pool.fit(tasks, expected=SPEC_PARAMS.spec(), timeout=60)
        assert [cid for cid, _ in fit.results] == ["3", "0"]  # task order, failures left out
        assert [f.cid for f in fit.failures] == ["2"] and "client 2 is broken" in fit.failures[0].reason
        three = dict(fit.results)["3"]
        assert three.num_examples == 13 and three.metrics["seen_round"] == 7
        np.testing.assert_array_equal(three.parameters["w"], np.full((3, 4), 3.0, np.float32))
        assert fit.stats.bytes_down == 3 * SPEC_PARAMS.nbytes and fit.stats.bytes_up == 2 * SPEC_PARAMS.nbytes
        ev = pool.evaluate([(cid, EvaluateIns(SPEC_PARAMS, {})) for cid in ["1", "3"]], timeout=60)
        assert [(cid, r.loss) for cid, r in ev.results] == [("1", 1.0), ("3", 3.0)]
    finally:
        pool.close()


# -- strategies ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_checkpoints_and_resumes_exactly(name: str, tmp_path: Path) -> None:
    trees = name.startswith("xgb-")  # gradient-boosted trees: their own model (binary data for xgb-histogram)
    cfg = RunConfig(dataset="breast_cancer" if trees else "iris", model="xgboost" if trees else "linear", clients=8,
                    fraction=1.0, rounds=3, strategy=name, partition="iid", client_test_fraction=0.0, batch_size=8,
                    progress=False, seed=5)
    straight = run_simulation(cfg)
    ckpt = tmp_path / "ckpt.safetensors"
    run_simulation(cfg.replace(rounds=1), checkpoint_path=ckpt)
    resumed = run_simulation(cfg, checkpoint_path=ckpt, resume=True)
    assert [h.round for h in resumed.history] == [1, 2, 3]
    for k in straight.parameters:
        np.testing.assert_array_equal(resumed.parameters[k], straight.parameters[k])
