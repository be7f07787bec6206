"""Bytes per round and final accuracy of each codec on digits with 100 clients."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from fedloom import RunConfig, run_simulation
from fedloom.compression import make_codec
from fedloom.core.parameters import Parameters

CODECS: dict[str, dict[str, Any]] = {
    "none": {},
    "fp16": {"compression": "fp16"},
    "q8": {"compression": "q8"},
    "q4": {"compression": "q4"},
    "q4 (block 64)": {"compression": "q4", "quant_block": 64},
    "topk 10% + EF": {"compression": "topk", "topk_fraction": 0.1},
    "topk 10%, no EF": {"compression": "topk", "topk_fraction": 0.1, "error_feedback": False},
    "topk 1% + EF": {"compression": "topk", "topk_fraction": 0.01},
    "topk 1%, no EF": {"compression": "topk", "topk_fraction": 0.01, "error_feedback": False},
    "q8 + fp16 broadcast": {"compression": "q8", "compress_broadcast": True},
}


def base_config(*, quick: bool) -> RunConfig:
    """Digits (1,437 training rows), 100 IID clients all training every round, the built-in MLP."""
    return RunConfig(dataset="digits", clients=100, fraction=1.0, partition="iid", model="mlp", hidden=128,
                     rounds=4 if quick else 40, local_epochs=5, lr=0.1, eval_every=2, progress=False)


def serialized_size(changes: dict[str, Any], params: Parameters) -> int:
    """Bytes of one client's payload as serialized (safetensors header included)."""
    rng = np.random.default_rng(0)
    update = Parameters({k: rng.normal(scale=0.01, size=v.shape) for k, v in params.items()})
    codec = make_codec(changes.get("compression", "none"), topk_fraction=changes.get("topk_fraction", 0.01),
                       quant_block=changes.get("quant_block", 0))
    payload = update.unflatten(update.flatten()).copy() if codec is None else codec.encode(update, rng=rng)
    if codec is None:
        payload = Parameters({k: v.astype(np.float32) for k, v in payload.items()})
    return len(payload.to_bytes())


def run(*, quick: bool, only: list[str] | None = None) -> list[dict[str, Any]]:
    cfg = base_config(quick=quick)
    rows = []
    reference: np.ndarray | None = None
    for name, changes in CODECS.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        result = run_simulation(cfg.replace(**changes))
        wall = time.perf_counter() - start
        history = [h.metrics for h in result.history]
        up = np.cumsum([m["bytes_up"] for m in history])
        final_vec = result.parameters.flatten()
        if name == "none":
            reference = final_vec
        distance = None if reference is None else float(
            np.linalg.norm(final_vec - reference) / np.linalg.norm(reference))
        rows.append({
            "codec": name,
            "config": changes,
            "bytes_up_per_client": history[-1]["bytes_up_per_client"],
            "bytes_down_per_client": history[-1]["bytes_down_per_client"],
            "bytes_up_per_round": history[-1]["bytes_up"],
            "serialized_bytes_per_client": serialized_size(changes, result.parameters),
            "mb_up_total": float(up[-1]) / 1e6,
            "final_accuracy": history[-1]["accuracy"],
            "final_loss": history[-1]["loss"],
            "rel_distance_to_uncompressed": distance,
            "best_accuracy": max(m["accuracy"] for m in history if "accuracy" in m),
            "curve": [(float(up[i]) / 1e6, m["accuracy"]) for i, m in enumerate(history) if "accuracy" in m],
            "wall_s": wall,
        })
        print(f"  {name:22s} {rows[-1]['bytes_up_per_client']:>8.0f} B/client  "
              f"acc {rows[-1]['final_accuracy']:.3f}  loss {rows[-1]['final_loss']:.4f}  "
              f"dist {distance}  {wall:.1f}s", flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]["bytes_up_per_client"]
    lines = [
        "| codec | bytes up / client / round | serialized | ratio | bytes up / round (100 clients) "
        "| bytes down / client | final accuracy | best accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['codec']} | {r['bytes_up_per_client']:,.0f} | {r['serialized_bytes_per_client']:,} "
            f"| {base / r['bytes_up_per_client']:.1f}x | {r['bytes_up_per_round']:,.0f} "
            f"| {r['bytes_down_per_client']:,.0f} | {r['final_accuracy']:.3f} | {r['best_accuracy']:.3f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        xs, ys = zip(*r["curve"], strict=True)
        ax.plot(xs, ys, marker="o", markersize=2, label=r["codec"])
    ax.set_xscale("log")
    ax.set_xlabel("cumulative MB sent by clients (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits, 100 clients, MLP (9,610 parameters)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
