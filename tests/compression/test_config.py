"""Compression options: config errors, CLI flags, bytes in summary.json and the bytes plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedloom import RunConfig
from fedloom.cli import main
from fedloom.errors import ConfigError
from fedloom.runs import write_plots


@pytest.mark.parametrize(("changes", "message"), [
    ({"compression": "zip"}, "unknown compression 'zip'"),
    ({"compression": "topk", "topk_fraction": 0.0}, r"topk_fraction must be in \(0, 1\]"),
    ({"compression": "q4", "quant_block": -1}, "quant_block must be >= 0"),
])
def test_invalid_compression_options(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**changes).validate()


def test_compression_with_secure_aggregation_is_refused():
    cfg = RunConfig(compression="q8")
    cfg.secagg = True  # the field the SecAgg+ work adds
    with pytest.raises(ConfigError, match="SecAgg\\+ already quantizes"):
        cfg.validate()
    cfg.compression = "none"
    cfg.compress_broadcast = True  # server-to-client compression is fine
    cfg.validate()
    off = RunConfig(compression="q8")
    off.secagg = False
    off.validate()


def test_cli_rejects_unknown_compression(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--compression", "zip", "--dataset", "iris"])
    assert exit_info.value.code == 2
    assert "unknown compression 'zip'" in capsys.readouterr().err


def test_cli_run_records_compressed_bytes(tmp_path):
    out = tmp_path / "run"
    main(["run", "--dataset", "iris", "--model", "logistic", "--clients", "3", "--rounds", "2",
          "--compression", "q8", "--quant-block", "4", "--compress-broadcast", "--no-progress", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    # logistic on iris: 4x3 weights + 3 biases = 15 float32 values = 60 bytes per client uncompressed.
    # q8, blocks of 4: 12 + 3 int8 codes, 3 + 1 float32 scales = 31 bytes; broadcast in float16: 30 bytes.
    assert [h["bytes_up_per_client"] for h in summary["history"]] == [31, 31]
    assert [h["bytes_down_per_client"] for h in summary["history"]] == [30, 30]
    assert summary["bytes"] == {"up": 2 * 3 * 31, "down": 2 * 3 * 30}
    assert (out / "accuracy_vs_bytes.png").exists()


def test_bytes_plot_falls_back_to_federated_accuracy(tmp_path):
    history = [{"round": 1, "fed_accuracy": 0.5, "bytes_up": 10.0, "bytes_down": 20.0},
               {"round": 2, "fed_accuracy": 0.7, "bytes_up": 10.0, "bytes_down": 20.0}]
    written = write_plots(history, tmp_path)
    assert tmp_path / "accuracy_vs_bytes.png" in written


def test_broadcast_only_compression_keeps_the_server_model_in_full_precision():
    from fedloom.simulation import run_simulation

    cfg = RunConfig(dataset="iris", model="logistic", clients=3, rounds=2, progress=False)
    plain, half = run_simulation(cfg), run_simulation(cfg.replace(compress_broadcast=True))
    assert half.final["bytes_down"] == plain.final["bytes_down"] / 2
    assert half.final["bytes_up"] == plain.final["bytes_up"]
    # Clients train from the float16 model, but the server adds their updates to its float32 model:
    # the result is close to plain FedAvg, not rounded to float16.
    diff = np.abs(half.parameters.flatten() - plain.parameters.flatten())
    assert 0 < diff.max() < 1e-2
    rounded = half.parameters.flatten().astype(np.float16).astype(np.float64)
    assert np.abs(half.parameters.flatten() - rounded).max() > 0
