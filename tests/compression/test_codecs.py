"""Round-trip error bounds, unbiasedness and payload validation of every codec."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.compression import Float16Codec, StochasticQuantizer, TopK, make_codec
from fedloom.core.parameters import Parameters
from fedloom.errors import ConfigError, ValidationError


def _update(seed: int = 0) -> Parameters:
    rng = np.random.default_rng(seed)
    return Parameters({
        "layer.weight": rng.normal(scale=0.05, size=(32, 17)),
        "layer.bias": rng.normal(scale=1e-3, size=17),  # odd size: exercises 4-bit padding
        "out.weight": rng.standard_t(2, size=(5, 9)) * 0.1,  # heavy tails
    })


def _roundtrip(codec, update: Parameters, seed: int = 0) -> Parameters:
    payload = codec.encode(update, rng=np.random.default_rng(seed))
    # What travels is what the server decodes: go through the wire format.
    return codec.decode(Parameters.from_bytes(payload.to_bytes()), update.spec())


def test_fp16_error_within_half_ulp():
    update = _update()
    decoded = _roundtrip(Float16Codec(), update)
    for name, x in update.items():
        bound = np.maximum(np.abs(x) * 2.0**-11, 2.0**-25)
        assert np.all(np.abs(decoded[name] - x) <= bound), name
    assert Float16Codec().encode(update, rng=np.random.default_rng(0)).nbytes == update.num_elements * 2


def test_fp16_refuses_values_beyond_its_range():
    with pytest.raises(ValidationError, match="float16 range"):
        Float16Codec().encode(Parameters({"w": np.array([1e6])}), rng=np.random.default_rng(0))


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("block", [0, 64])
def test_quantizer_error_below_one_step(bits: int, block: int):
    codec = StochasticQuantizer(bits=bits, block=block)
    update = _update()
    decoded = _roundtrip(codec, update)
    steps = codec.step_bound(update)
    for name, x in update.items():
        err = np.abs(decoded[name] - x).reshape(-1)
        assert np.all(err <= steps[name] * (1 + 1e-6)), name
        # The largest entry of each block is exactly representable.
        i = int(np.argmax(np.abs(x)))
        assert decoded[name].reshape(-1)[i] == pytest.approx(x.reshape(-1)[i], rel=1e-6)


def test_quantizer_payload_sizes():
    update = Parameters({"w": np.ones(1001)})
    p8 = StochasticQuantizer(bits=8).encode(update, rng=np.random.default_rng(0))
    p4 = StochasticQuantizer(bits=4, block=100).encode(update, rng=np.random.default_rng(0))
    assert (p8["w::codes"].dtype, p8["w::codes"].size, p8["w::scales"].size) == (np.int8, 1001, 1)
    assert (p4["w::codes"].dtype, p4["w::codes"].size, p4["w::scales"].size) == (np.uint8, 501, 11)


@pytest.mark.parametrize("bits", [8, 4])
def test_stochastic_quantization_is_unbiased(bits: int):
    codec = StochasticQuantizer(bits=bits)
    x = np.array([0.3, -0.77, 0.01, 1.0, -0.5123, 0.0])
    update = Parameters({"w": x})
    rng = np.random.default_rng(42)
    draws = 4000
    mean = np.zeros_like(x)
    for _ in range(draws):
        mean += codec.decode(codec.encode(update, rng=rng), update.spec())["w"]
    mean /= draws
    # Each coordinate's decoded value lies in [lo, lo + step]: sd <= step / 2, so the standard error
    # of the mean is <= step / (2 sqrt(draws)); allow 5 standard errors.
    step = 1.0 / codec.levels
    assert np.all(np.abs(mean - x) <= 5 * step / (2 * np.sqrt(draws)))
    # Without randomness (round to nearest) the mean of 0.01 at 4 bits would be 0, far off.
    assert mean[2] > 0.0


def test_topk_keeps_largest_and_bounds_dropped_energy():
    update = _update()
    codec = TopK(fraction=0.1)
    decoded = _roundtrip(codec, update)
    x, y = update.flatten(), decoded.flatten()
    k = codec.k(x.size)
    assert np.count_nonzero(y) == k
    kept = np.abs(x) >= np.sort(np.abs(x))[-k]
    np.testing.assert_allclose(y[kept], x[kept], rtol=2**-23)
    assert np.sum((x - y) ** 2) <= (1 - k / x.size) * np.sum(x**2) * (1 + 1e-6)


def test_topk_payload_is_indices_and_values():
    payload = TopK(fraction=0.01).encode(Parameters({"w": np.arange(1000.0)}), rng=np.random.default_rng(0))
    assert payload["topk::indices"].tolist() == list(range(990, 1000))
    assert payload.nbytes == 10 * (4 + 4)


@pytest.mark.parametrize("name", ["fp16", "q8", "q4", "topk"])
def test_decode_rejects_malformed_payloads(name: str):
    codec = make_codec(name, topk_fraction=0.1)
    update = _update()
    spec = update.spec()
    payload = dict(codec.encode(update, rng=np.random.default_rng(0)))
    first = next(iter(payload))
    with pytest.raises(ValidationError, match="wrong names"):
        codec.decode(Parameters({k: v for k, v in payload.items() if k != first}), spec)
    truncated = {**payload, first: payload[first][:-1]}
    with pytest.raises(ValidationError):
        codec.decode(Parameters(truncated), spec)
    wrong_dtype = {**payload, first: payload[first].astype(np.float64)}
    with pytest.raises(ValidationError, match="dtype"):
        codec.decode(Parameters(wrong_dtype), spec)


def test_decode_rejects_out_of_range_values():
    spec = Parameters({"w": np.zeros(4)}).spec()
    with pytest.raises(ValidationError, match="-128"):
        StochasticQuantizer(bits=8).decode(
            Parameters({"w::codes": np.array([-128, 0, 1, 2], np.int8), "w::scales": np.ones(1, np.float32)}), spec)
    with pytest.raises(ValidationError, match="negative"):
        StochasticQuantizer(bits=8).decode(
            Parameters({"w::codes": np.zeros(4, np.int8), "w::scales": -np.ones(1, np.float32)}), spec)
    with pytest.raises(ValidationError, match="NaN"):
        StochasticQuantizer(bits=4).decode(
            Parameters({"w::codes": np.full(2, 0x88, np.uint8), "w::scales": np.full(1, np.nan, np.float32)}), spec)
    with pytest.raises(ValidationError, match="strictly increasing"):
        TopK(fraction=0.5).decode(
            Parameters({"topk::indices": np.array([3, 9], np.uint32), "topk::values": np.ones(2, np.float32)}), spec)
    with pytest.raises(ValidationError, match="strictly increasing"):
        TopK(fraction=0.5).decode(
            Parameters({"topk::indices": np.array([1, 1], np.uint32), "topk::values": np.ones(2, np.float32)}), spec)


def test_bad_codec_options_raise_config_errors():
    with pytest.raises(ConfigError):
        StochasticQuantizer(bits=3)
    with pytest.raises(ConfigError):
        StochasticQuantizer(bits=8, block=-1)
    with pytest.raises(ConfigError):
        TopK(fraction=0.0)
    with pytest.raises(ConfigError, match="unknown compression"):
        make_codec("zip")
    assert make_codec("none") is None
