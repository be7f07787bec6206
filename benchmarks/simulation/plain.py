"""The limit: workload W written as a plain PyTorch program, without fedloom.

It does exactly the work a ``fedloom`` simulation of W does, so no framework can beat it while
doing the same work: the same data (standardized with client-pool statistics, 20% held out,
stratified), the same IID partition, the same model and initial weights (MLP ``features -> 128
-> classes`` with ReLU after ``torch.manual_seed(seed)``), the same per-task seeds and therefore
the same batch order (``torch.randperm`` seeded per client and round), SGD with lr 0.05 and batch
16 for one local epoch, example-weighted FedAvg computed in float64, and central evaluation on the
held-out set after every round. Same seed, same numbers: its final accuracy equals fedloom's.

Run: ``python -m benchmarks.simulation.plain --clients 100`` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
import zlib

_T0 = time.perf_counter()

import numpy as np  # noqa: E402 - import time is part of what we measure
import torch  # noqa: E402
from torch import nn  # noqa: E402


def load_data(dataset: str, seed: int, test_fraction: float = 0.2):  # noqa: ANN201
    """Features/labels of the client pool and the held-out test set, standardized."""
    from sklearn.model_selection import train_test_split

    if dataset == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x, y = bunch.data, bunch.target
    else:  # a .npz with arrays x and y (the synthetic data of benchmarks.simulation.data)
        with np.load(dataset, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    _, y = np.unique(y, return_inverse=True)
    y = y.astype(np.int64)
    idx = np.arange(len(x))
    stratify = y if np.bincount(y).min() >= 2 else None
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean, std = x[train_idx].mean(axis=0), x[train_idx].std(axis=0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def task_seed(seed: int, rnd: int, cid: int) -> int:
    """Per-client, per-round seed of the batch order (the same formula fedloom uses)."""
    return zlib.crc32(f"{seed}:{rnd}:{cid}".encode()) & 0x7FFFFFFF


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)
    seed = args.seed

    torch.manual_seed(seed)
    x_pool, y_pool, x_test, y_test = load_data(args.dataset, seed)
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y_pool)), args.clients)
    xt, yt = torch.from_numpy(x_pool), torch.from_numpy(y_pool)
    clients = [np.sort(p) for p in parts]
    x_eval, y_eval = torch.from_numpy(x_test), torch.from_numpy(y_test)

    torch.manual_seed(seed)
    num_classes = int(y_pool.max()) + 1
    model = nn.Sequential(nn.Linear(x_pool.shape[1], 128), nn.ReLU(), nn.Linear(128, num_classes))
    loss_fn = nn.CrossEntropyLoss()
    global_vec = torch.cat([t.detach().reshape(-1) for t in model.state_dict().values()]).double()
    sampler = np.random.default_rng(seed)
    setup_s = time.perf_counter() - _T0

    round_s: list[float] = []
    accuracy = 0.0
    for rnd in range(1, args.rounds + 1):
        start = time.perf_counter()
        n = args.clients
        k = min(n, max(1, math.ceil(args.fraction * n - 1e-9)))
        chosen = range(n) if k == n else np.sort(sampler.choice(n, size=k, replace=False))
        acc = torch.zeros_like(global_vec)
        results = []
        for cid in chosen:
            torch.nn.utils.vector_to_parameters(global_vec.float(), model.parameters())
            idx = clients[int(cid)]
            x, y = xt[idx], yt[idx]
            optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
            generator = torch.Generator().manual_seed(task_seed(seed, rnd, str(int(cid))))
            model.train()
            order = torch.randperm(len(idx), generator=generator)
            for b in range(0, len(idx), args.batch_size):
                batch = order[b : b + args.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(x[batch]), y[batch]).backward()
                optimizer.step()
            vec = torch.nn.utils.parameters_to_vector(model.parameters()).double()
            results.append((len(idx), vec))
        total = float(sum(w for w, _ in results))
        for w, vec in results:
            acc += (w / total) * (vec - global_vec)
        global_vec = (global_vec + acc).float().double()
        # central evaluation on the held-out set
        torch.nn.utils.vector_to_parameters(global_vec.float(), model.parameters())
        model.eval()
        with torch.no_grad():
            correct, loss_sum = 0, 0.0
            for b in range(0, len(y_eval), 1024):
                out = model(x_eval[b : b + 1024])
                loss_sum += float(loss_fn(out, y_eval[b : b + 1024])) * out.shape[0]
                correct += int((out.argmax(dim=1) == y_eval[b : b + 1024]).sum())
        accuracy = correct / len(y_eval)
        round_s.append(time.perf_counter() - start)

    return {
        "impl": "plain",
        "clients": args.clients,
        "setup_s": setup_s,
        "round_s": round_s,
        "loop_s": sum(round_s),
        "total_s": time.perf_counter() - _T0,
        "accuracy": accuracy,
        "loss": loss_sum / len(y_eval),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
