"""Sample-level DP-SGD inside local training, through Opacus.

Paper: Martín Abadi, Andy Chu, Ian Goodfellow, H. Brendan McMahan, Ilya Mironov, Kunal Talwar,
Li Zhang, "Deep Learning with Differential Privacy", ACM CCS 2016, arXiv:1607.00133. Library:
Opacus (Yousefpour et al., arXiv:2109.12298).

Pass ``dp_sgd=DPSGD(...)`` to :class:`~fedloom.TorchClient`: each local epoch then runs Opacus'
``PrivacyEngine.make_private`` (per-sample gradient clipping to ``max_grad_norm``, Gaussian noise,
Poisson-sampled batches). This protects each training example of a client against anyone who sees
its update (the server included), but not the client's participation as a whole. The client counts
its DP-SGD steps across rounds in its state and reports its cumulative ``dp_sgd_epsilon``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from fedloom import TorchClient
    >>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    >>> client = TorchClient(model_fn=lambda: nn.Linear(4, 2), train_data=(x, y), lr=0.1,
    ...                      dp_sgd=DPSGD(noise_multiplier=1.0, max_grad_norm=1.0))
    >>> res = client.fit(client.get_parameters({}), {"seed": 0})
    >>> res.metrics["dp_sgd_epsilon"] > 0
    True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from fedloom.core.parameters import Parameters
from fedloom.core.types import Config
from fedloom.errors import ConfigError
from fedloom.privacy.accountant import epsilon
from fedloom.torch.training import TensorData

if TYPE_CHECKING:
    from fedloom.torch.client import TorchClient

__all__ = ["DPSGD", "train_dp_sgd"]

_STEPS_KEY = "dp_sgd"


@dataclass(frozen=True)
class DPSGD:
    """DP-SGD settings of a client.

    Args:
        noise_multiplier: Noise std divided by ``max_grad_norm``.
        max_grad_norm: Per-sample gradient clip norm.
        delta: The delta of the reported per-client epsilon.
    """

    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if self.noise_multiplier < 0 or not self.max_grad_norm > 0:
            raise ConfigError("DP-SGD needs noise_multiplier >= 0 and max_grad_norm > 0")


def train_dp_sgd(client: TorchClient, optimizer: torch.optim.Optimizer, config: Config,
                 generator: torch.Generator) -> tuple[float, dict[str, float]]:
    """Train ``client.model`` with Opacus DP-SGD per ``config``; returns last-epoch loss and metrics."""
    from opacus import PrivacyEngine

    settings = client.dp_sgd
    assert settings is not None
    data = client.train_data
    if not isinstance(data, TensorData):
        raise ConfigError("DP-SGD with fedloom needs in-memory (x, y) training data, not a DataLoader")
    batch_size = int(config.get("batch_size", client.batch_size))
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=batch_size, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns about secure_mode; docs/privacy.md states the caveat
        engine = PrivacyEngine(accountant="rdp")
        model, dp_opt, dp_loader = engine.make_private(
            module=client.model, optimizer=optimizer, data_loader=loader,
            noise_multiplier=settings.noise_multiplier, max_grad_norm=settings.max_grad_norm,
            noise_generator=generator,
        )
    steps, last = 0, 0.0
    try:
        model.train()
        for _ in range(int(config.get("local_epochs", client.local_epochs))):
            total, count = 0.0, 0
            for xb, yb in dp_loader:
                if len(xb) == 0:
                    continue
                xb, yb = xb.to(client.device), yb.to(client.device)
                dp_opt.zero_grad(set_to_none=True)
                loss = client.loss_fn(model(xb), yb)
                with warnings.catch_warnings():  # Opacus' hooks warn when inputs need no gradient
                    warnings.simplefilter("ignore", UserWarning)
                    loss.backward()
                dp_opt.step()
                steps += 1
                total += float(loss.detach()) * len(xb)
                count += len(xb)
            last = total / max(count, 1)
    finally:
        model._close()  # remove Opacus hooks: the wrapped module is the client's own model
    sample_rate = min(1.0, batch_size / len(data))
    entry = client.state.get(_STEPS_KEY)
    done = int(entry["steps"][0]) + steps if entry is not None else steps
    client.state[_STEPS_KEY] = Parameters({"steps": np.array([done], np.int64)})
    eps = epsilon(noise_multiplier=settings.noise_multiplier, sampling_rate=sample_rate, steps=done,
                  delta=settings.delta) if settings.noise_multiplier > 0 else float("inf")
    return last, {"dp_sgd_epsilon": eps}
