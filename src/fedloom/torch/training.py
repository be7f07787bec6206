"""Local training and evaluation loops used by :class:`~fedloom.torch.client.TorchClient`.

Batches are drawn by index from in-memory tensors with a seeded permutation: faster than a
``DataLoader`` for the small per-client datasets of simulation, and identical in every backend.
A user ``DataLoader`` is iterated as given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["TensorData", "as_tensor_data", "train_epochs", "evaluate_model", "Batches"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TensorData:
    """Features and targets held in memory."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(
        self, batch_size: int, generator: torch.Generator | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield self.x[idx], self.y[idx]


Data = TensorData | DataLoader | tuple


def as_tensor_data(data: object) -> TensorData | DataLoader:
    """Accept ``(x, y)`` tensors/arrays, a ``TensorDataset``, or a ``DataLoader``."""
    if isinstance(data, (TensorData, DataLoader)):
        return data
    if isinstance(data, torch.utils.data.TensorDataset):
        x, y = data.tensors[0], data.tensors[1]
        return TensorData(x, y)
    if isinstance(data, tuple) and len(data) == 2:
        x, y = (torch.as_tensor(v) for v in data)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"features have {x.shape[0]} rows but targets have {y.shape[0]}")
        return TensorData(x, y)
    raise TypeError(
        f"data must be (x, y), a TensorDataset or a DataLoader; got {type(data).__name__}"
    )


def num_examples(data: TensorData | DataLoader) -> int:
    """Number of examples in ``data``."""
    if isinstance(data, TensorData):
        return len(data)
    return len(data.dataset)  # type: ignore[arg-type]


def _iterate(data: TensorData | DataLoader, batch_size: int, generator: torch.Generator | None) -> Batches:
    if isinstance(data, TensorData):
        return data.batches(batch_size, generator)
    return data


def train_epochs(
    model: nn.Module,
    data: TensorData | DataLoader,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    generator: torch.Generator | None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    device: torch.device | str = "cpu",
) -> float:
    """Train for ``epochs``; returns the mean training loss of the last epoch."""
    model.train()
    last_loss = 0.0
    device = torch.device(device)
    for _ in range(epochs):
        total, count = 0.0, 0
        for xb, yb in _iterate(data, batch_size, generator):
            if xb.device != device or yb.device != device:  # a no-op .to() still costs a dispatch
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            objective = loss if extra_loss is None else loss + extra_loss(model)
            objective.backward()
            optimizer.step()
            total += float(loss.detach()) * xb.shape[0]
            count += xb.shape[0]
        last_loss = total / max(count, 1)
    return last_loss


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    data: TensorData | DataLoader | tuple,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    task: str,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> tuple[float, int, dict[str, float]]:
    """Mean loss, example count and metrics (``accuracy`` for classification)."""
    data = as_tensor_data(data)
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for xb, yb in _iterate(data, batch_size, None):
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb)
        total_loss += float(loss_fn(out, yb)) * xb.shape[0]
        if task == "classification":
            correct += int((out.argmax(dim=1) == yb).sum())
        count += xb.shape[0]
    metrics = {"accuracy": correct / count} if task == "classification" and count else {}
    return total_loss / max(count, 1), count, metrics
