"""The user's own model, data and training code: Flower's PyTorch quickstart ``task.py``, ported.

Flower's quickstart trains a small CNN on CIFAR-10 split over clients by ``flwr_datasets``. This
port keeps its shape (``Net``, ``load_data``, ``train``, ``test``, ``get_weights``/``set_weights``)
on scikit-learn's 8x8 digits (bundled, no download), split over ten clients by a Dirichlet(0.5)
partition as Flower's ``DirichletPartitioner`` would. Nothing here imports fedloom: this is the
code you bring.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cache

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    """Flower's quickstart CNN (two conv blocks, three linear layers), sized for 1x8x8 images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 2 * 2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = x.flatten(1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


@cache
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as (N, 1, 8, 8) floats in [0, 1]: a stratified 80/20 split (clients' pool, central test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    x_pool, x_test, y_pool, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return x_pool, y_pool.astype(np.int64), x_test, y_test.astype(np.int64)


@cache
def dirichlet_partition(num_partitions: int, alpha: float = 0.5, seed: int = 42,
                        min_partition_size: int = 10) -> tuple[np.ndarray, ...]:
    """Row indices of each partition: per class, Dirichlet(alpha) proportions over partitions,
    redrawn until every partition has ``min_partition_size`` rows (what flwr_datasets does)."""
    _, y, _, _ = _digits()
    rng = np.random.default_rng(seed)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(num_partitions)]
        for label in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == label))
            shares = rng.dirichlet([alpha] * num_partitions)
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for part, chunk in zip(parts, np.split(rows, cuts), strict=True):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_partition_size:
            return tuple(np.sort(np.array(p)) for p in parts)
    raise ValueError(f"no Dirichlet({alpha}) partition with {min_partition_size} rows each after 100 draws")


def load_data(partition_id: int, num_partitions: int, batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    """This partition's train and validation loaders (80/20 of its rows), as in Flower's quickstart."""
    x, y, _, _ = _digits()
    rows = dirichlet_partition(num_partitions)[partition_id]
    rows = np.random.default_rng(partition_id).permutation(rows)
    n_val = max(1, len(rows) // 5)
    val, train_rows = rows[:n_val], rows[n_val:]
    train_set = TensorDataset(torch.from_numpy(x[train_rows]), torch.from_numpy(y[train_rows]))
    val_set = TensorDataset(torch.from_numpy(x[val]), torch.from_numpy(y[val]))
    return DataLoader(train_set, batch_size=batch_size, shuffle=True), DataLoader(val_set, batch_size=batch_size)


def load_centralized_testset(batch_size: int = 128) -> DataLoader:
    """The held-out 20% of digits, for the server's central evaluation."""
    _, _, x, y = _digits()
    return DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=batch_size)


def train(net: nn.Module, trainloader: DataLoader, epochs: int, lr: float, device: str = "cpu") -> float:
    """Train the network on the training set; the mean training loss."""
    net.to(device)
    criterion = nn.CrossEntropyLoss().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    running_loss = 0.0
    for _ in range(epochs):
        for images, labels in trainloader:
            optimizer.zero_grad()
            loss = criterion(net(images.to(device)), labels.to(device))
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    return running_loss / (epochs * len(trainloader))


def test(net: nn.Module, testloader: DataLoader, device: str = "cpu") -> tuple[float, float]:
    """Validate the model on the test set; (mean loss, accuracy)."""
    net.to(device)
    criterion = nn.CrossEntropyLoss()
    correct, loss = 0, 0.0
    net.eval()
    with torch.no_grad():
        for images, labels in testloader:
            outputs = net(images.to(device))
            loss += criterion(outputs, labels.to(device)).item() * len(labels)
            correct += (outputs.argmax(1) == labels.to(device)).sum().item()
    n = len(testloader.dataset)  # type: ignore[arg-type]
    return loss / n, correct / n


def get_weights(net: nn.Module) -> list[np.ndarray]:
    """The model's weights as a list of arrays (Flower's NDArrays)."""
    return [val.cpu().numpy() for _, val in net.state_dict().items()]


def set_weights(net: nn.Module, parameters) -> None:  # noqa: ANN001 - a list of arrays or fedloom Parameters
    """Load weights into the model: a list of arrays (in state_dict order) or a name -> array mapping."""
    values = parameters.values() if hasattr(parameters, "values") else parameters
    state_dict = OrderedDict({k: torch.tensor(np.asarray(v)) for k, v in zip(net.state_dict().keys(), values,
                                                                             strict=True)})
    net.load_state_dict(state_dict, strict=True)


def initial_parameters() -> nn.Module:
    """The first global model (``initial_parameters = "task:initial_parameters"``): a fresh Net, seeded."""
    torch.manual_seed(0)
    return Net()
