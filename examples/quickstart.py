"""Quickstart: FedAvg on scikit-learn's digits, 10 non-IID clients, your own model and clients.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import torch
from torch import nn

from fedloom import FedAvg, TorchClient, load_dataset, partition, simulate
from fedloom.torch import make_evaluate_fn

data = load_dataset("digits", seed=0)  # bundled with scikit-learn: no download
parts = partition(data.y_train, 10, method="dirichlet", alpha=0.5, seed=0)
x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)


def model_fn() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def client_fn(cid: str) -> TorchClient:
    idx = torch.from_numpy(parts[int(cid)])
    return TorchClient(model_fn=model_fn, train_data=(x[idx], y[idx]), lr=0.05, batch_size=16)


if __name__ == "__main__":
    torch.manual_seed(0)
    evaluate = make_evaluate_fn(model_fn, (torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)))
    strategy = FedAvg(evaluate_fn=evaluate, fraction_evaluate=0.0)  # central evaluation only
    result = simulate(client_fn, num_clients=10, strategy=strategy, rounds=20)
    print(f"final accuracy: {result.final['accuracy']:.3f}")
