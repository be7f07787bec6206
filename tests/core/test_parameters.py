import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedloom.core import Parameters
from fedloom.errors import ValidationError

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
          np.float16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (2, 1, 4)])
def test_round_trip_every_dtype_and_shape(dtype, shape):
    rng = np.random.default_rng(0)
    arr = np.asarray(rng.standard_normal(shape) * 100).astype(dtype)
    p = Parameters({"a": arr, "b": (np.arange(3) % 2).astype(dtype)})
    back = Parameters.from_bytes(p.to_bytes())
    assert back.names == ["a", "b"]
    assert back["a"].dtype == arr.dtype and back["a"].shape == arr.shape
    np.testing.assert_array_equal(back["a"], arr)


@settings(max_examples=50, deadline=None)
@given(
    arrays=st.lists(
        hnp.arrays(
            dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8]),
            shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
        ),
        min_size=1,
        max_size=5,
    ),
    names=st.data(),
)
def test_round_trip_preserves_order_and_bits(arrays, names):
    keys = names.draw(st.lists(st.text(min_size=1, max_size=8), min_size=len(arrays), max_size=len(arrays),
                               unique=True))
    p = Parameters(dict(zip(keys, arrays, strict=True)))
    back = Parameters.from_bytes(p.to_bytes())
    assert back.names == keys
    for k in keys:
        assert back[k].tobytes() == p[k].tobytes()  # bit-exact, NaN payloads included
        assert back[k].shape == p[k].shape and back[k].dtype == p[k].dtype


def test_big_endian_input_is_serialized_as_value():
    arr = np.arange(4, dtype=">f4")
    back = Parameters.from_bytes(Parameters({"x": arr}).to_bytes())
    np.testing.assert_array_equal(back["x"], arr.astype("<f4"))


def test_unsupported_dtype_is_a_clear_error():
    with pytest.raises(ValidationError, match="complex"):
        Parameters({"z": np.zeros(2, np.complex64)}).to_bytes()


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\xff" * 8 + b"{}", b"\x02\x00\x00\x00\x00\x00\x00\x00{}junk",
                                     (10).to_bytes(8, "little") + b'{"a": 1}  '])
def test_malformed_bytes_raise_validation_error(payload):
    with pytest.raises(ValidationError):
        Parameters.from_bytes(payload)


def test_flatten_unflatten_round_trip_and_integer_rounding():
    p = Parameters({"w": np.array([[1.5, 2.5]], np.float32), "n": np.array(3, np.int64)})
    v = p.flatten()
    assert v.dtype == np.float64 and v.tolist() == [1.5, 2.5, 3.0]
    back = p.unflatten(np.array([0.25, 0.5, 4.6]))
    assert back["w"].dtype == np.float32 and back["w"].shape == (1, 2)
    assert back["n"].dtype == np.int64 and int(back["n"]) == 5
    with pytest.raises(ValidationError):
        p.unflatten(np.zeros(4))


def test_spec_and_sizes():
    p = Parameters({"w": np.zeros((2, 3), np.float32)})
    assert p.spec()["w"].shape == (2, 3) and p.spec()["w"].dtype == "f4"
    assert p.num_elements == 6 and p.nbytes == 24
