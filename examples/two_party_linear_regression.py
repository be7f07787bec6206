"""Two parties, one linear relationship, no data shared: FedAvg recovers the pooled fit.

Party A and party B each hold private samples of the same relationship y = X w + b + noise
(with different sizes and feature ranges). Each round both run one full-batch gradient step
from the global model and send back only their new weights; the server averages them weighted
by sample counts. With one full-batch step per round, the weighted average of the two steps is
exactly a gradient step on the pooled data, so the federated weights converge to the pooled
least-squares solution that neither party could compute alone.

Run: python examples/two_party_linear_regression.py
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedloom import FedAvg, Parameters, TorchClient, simulate

TRUE_W = np.array([2.0, -1.0, 0.5])
TRUE_B = 0.3


def make_party(n: int, shift: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Private samples of the shared relationship, with a party-specific feature shift."""
    x = rng.normal(shift, 1.0, size=(n, 3))
    y = x @ TRUE_W + TRUE_B + rng.normal(0.0, 0.1, size=n)
    return x.astype(np.float32), y.astype(np.float32)


def pooled_least_squares(parties: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The centralized answer: ordinary least squares on all data (weights then bias)."""
    x = np.concatenate([p[0] for p in parties]).astype(np.float64)
    y = np.concatenate([p[1] for p in parties]).astype(np.float64)
    design = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.lstsq(design, y, rcond=None)[0]


def federated_fit(parties: list[tuple[np.ndarray, np.ndarray]], rounds: int = 300, lr: float = 0.2) -> np.ndarray:
    """FedAvg over the parties; returns the global weights then bias."""

    def client_fn(cid: str) -> TorchClient:
        x, y = parties[int(cid)]
        return TorchClient(
            model_fn=lambda: nn.Linear(3, 1),
            train_data=(torch.from_numpy(x), torch.from_numpy(y)),
            task="regression",
            batch_size=len(x),  # one full-batch gradient step per round
            lr=lr,
        )

    init = Parameters({"weight": np.zeros((1, 3), np.float32), "bias": np.zeros(1, np.float32)})
    result = simulate(client_fn, num_clients=len(parties), strategy=FedAvg(), rounds=rounds, initial_parameters=init)
    return np.concatenate([result.parameters["weight"].ravel(), result.parameters["bias"]]).astype(np.float64)


def main() -> None:
    rng = np.random.default_rng(0)
    parties = [make_party(120, -0.5, rng), make_party(80, 0.8, rng)]
    pooled = pooled_least_squares(parties)
    federated = federated_fit(parties)
    print("pooled least squares:", np.round(pooled, 4))
    print("federated (FedAvg):  ", np.round(federated, 4))
    print("max |difference|:    ", float(np.abs(pooled - federated).max()))


if __name__ == "__main__":
    main()
