"""The communication examples run and do what they say."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_compressed_updates_example():
    final = load("compressed_updates").main(rounds=3)
    assert final["bytes_up_per_client"] == 7 * 8  # 1% of 650 weights: uint32 index + float32 value
    assert final["accuracy"] > 0.3


@pytest.mark.slow
def test_encrypted_aggregation_example():
    pytest.importorskip("tenseal")
    final = load("encrypted_aggregation").main(rounds=3)
    assert final["fed_accuracy"] > 0.5
    assert final["bytes_up_per_client"] == pytest.approx(131_000, rel=0.01)  # one ciphertext of 4096 slots
