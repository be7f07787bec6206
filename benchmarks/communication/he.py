"""Time and size of CKKS aggregation against plaintext aggregation: 10 clients x 100k parameters."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from fedloom.privacy.he import decrypt_vector, encrypt_vector, load_context, make_context, public_bytes
from fedloom.privacy.he.ciphertext import load_chunks, serialize_chunks
from fedloom.strategies import WeightedMean

SETTINGS = [(4096, 30), (8192, 40), (16384, 40)]


def run(*, quick: bool, clients: int = 10, size: int = 100_000, repeats: int = 3) -> list[dict[str, Any]]:
    if quick:
        size, repeats = 10_000, 1
    rng = np.random.default_rng(0)
    models = [rng.normal(scale=0.05, size=size).astype(np.float32) for _ in range(clients)]
    counts = rng.integers(50, 200, size=clients).astype(np.float64)
    plain_mean = WeightedMean()([m.astype(np.float64) for m in models], counts)
    rows = []
    for degree, scale in SETTINGS:
        secret = make_context(poly_degree=degree, scale_bits=scale)
        public = load_context(public_bytes(secret))
        times: dict[str, list[float]] = {k: [] for k in ("plain_agg", "encrypt", "he_agg", "decrypt")}
        for _ in range(repeats):  # interleaved: plaintext and HE measured in the same repeat
            t = time.perf_counter()
            WeightedMean()([m.astype(np.float64) for m in models], counts)
            times["plain_agg"].append(time.perf_counter() - t)
            t = time.perf_counter()
            payloads = [encrypt_vector(secret, n * m.astype(np.float64)) for m, n in zip(models, counts, strict=True)]
            times["encrypt"].append((time.perf_counter() - t) / clients)
            t = time.perf_counter()
            total = load_chunks(public, payloads[0], size)
            for p in payloads[1:]:
                for acc, vec in zip(total, load_chunks(public, p, size), strict=True):
                    acc.add_(vec)
            aggregate = serialize_chunks(public, total, size)
            times["he_agg"].append(time.perf_counter() - t)
            t = time.perf_counter()
            he_mean = decrypt_vector(secret, aggregate, size) / counts.sum()
            times["decrypt"].append(time.perf_counter() - t)
        err = np.abs(he_mean - plain_mean)
        rows.append({
            "poly_degree": degree,
            "scale_bits": scale,
            "ciphertexts": len(payloads[0]),
            "plain_bytes_per_client": size * 4,
            "he_bytes_per_client": payloads[0].nbytes,
            "he_bytes_aggregate": aggregate.nbytes,
            "public_context_bytes": len(public_bytes(secret)),
            **{f"{k}_s": statistics.median(v) for k, v in times.items()},
            "max_abs_error": float(err.max()),
            "rel_l2_error": float(np.linalg.norm(he_mean - plain_mean) / np.linalg.norm(plain_mean)),
        })
        r = rows[-1]
        print(f"  N={degree} scale=2^{scale}: {r['he_bytes_per_client'] / 1e6:.2f} MB/client, "
              f"agg {r['he_agg_s']:.3f}s vs {r['plain_agg_s'] * 1e3:.2f} ms, max err {r['max_abs_error']:.2e}",
              flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| poly degree | scale | ciphertexts / client | bytes up / client | vs float32 | server aggregation "
        "| plaintext aggregation | encrypt / client | decrypt | max abs error | relative L2 error |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['poly_degree']} | 2^{r['scale_bits']} | {r['ciphertexts']} | {r['he_bytes_per_client']:,} "
            f"| {r['he_bytes_per_client'] / r['plain_bytes_per_client']:.1f}x | {r['he_agg_s'] * 1e3:.0f} ms "
            f"| {r['plain_agg_s'] * 1e3:.1f} ms | {r['encrypt_s'] * 1e3:.0f} ms | {r['decrypt_s'] * 1e3:.0f} ms "
            f"| {r['max_abs_error']:.1e} | {r['rel_l2_error']:.1e} |"
        )
    return "\n".join(lines)
