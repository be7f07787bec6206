"""Sample-level DP-SGD inside local training, through Opacus.

Paper: Martín Abadi, Andy Chu, Ian Goodfellow, H. Brendan McMahan, Ilya Mironov, Kunal Talwar,
Li Zhang, "Deep Learning with Differential Privacy", ACM CCS 2016, arXiv:1607.00133. Library:
Opacus (Yousefpour et al., arXiv:2109.12298).

Pass ``dp_sgd=DPSGD(...)`` (or ``trainer=DPSGDTrainer(DPSGD(...))``) to :class:`~fedloom.TorchClient`:
its local training then runs through Opacus' ``PrivacyEngine.make_private`` (per-sample gradient
clipping to ``max_grad_norm``, Gaussian noise, Poisson-sampled batches). This protects each
training example of a client against anyone who sees its update (the server included), but not
the client's participation as a whole. The client counts its DP-SGD steps across rounds in its
state and reports its cumulative ``dp_sgd_epsilon``. Opacus and the accountant (dp_accounting)
are imported only when a client trains.

Randomness: the DP-SGD noise and the Poisson sampling of batches draw from ``torch.Generator`` objects
seeded with 64 bits from ``os.urandom`` for every task, never from the task seed (which the server
chose and knows: with it, the noise could be replayed and subtracted from the update). Opacus'
own ``secure_mode`` would use a CSPRNG stream (torchcsprng), which is not installable with this
torch; a Mersenne Twister seeded from the OS is unpredictable to anyone who only knows the run
and task seeds, but it is not a cryptographic stream, and Opacus' Gaussian sampler is the
floating-point one (Mironov 2012). ``DPSGD(reproducible_noise=True)`` restores the task seed:
reproducible, and NOT private.

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

import logging
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedloom.core.parameters import Parameters
from fedloom.core.trainer import TRAINERS, TrainContext, TrainOutcome
from fedloom.core.types import FitIns, Metrics
from fedloom.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DPSGD", "DPSGDTrainer", "secure_generator", "train_dp_sgd"]

log = logging.getLogger(__name__)

_STEPS_KEY = "dp_sgd"
_warned: set[str] = set()  # warnings given once per process (simulated clients are rebuilt every task)


@dataclass(frozen=True)
class DPSGD:
    """DP-SGD settings of a client.

    Args:
        noise_multiplier: Noise std divided by ``max_grad_norm``.
        max_grad_norm: Per-sample gradient clip norm.
        delta: The delta of the reported per-client epsilon.
        reproducible_noise: Draw noise and batches from the task seed (reproducible, NOT private).
    """

    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    reproducible_noise: bool = False

    def __post_init__(self) -> None:
        if self.noise_multiplier < 0 or not self.max_grad_norm > 0:
            raise ConfigError("DP-SGD needs noise_multiplier >= 0 and max_grad_norm > 0")


@TRAINERS.register("dp_sgd")
class DPSGDTrainer:
    """Sample-level DP-SGD through Opacus: per-example gradient clipping and Gaussian noise.

    Counts its steps across tasks in the client's state (``state["dp_sgd"]``) and reports the
    cumulative per-client ``dp_sgd_epsilon``. It trains the data loss only: a task's
    ``proximal_mu`` (FedProx) is not applied under DP-SGD.

    Args:
        settings: Noise multiplier, clip norm and delta (:class:`DPSGD`).
    """

    vectorizable: bool = False

    def __init__(self, settings: DPSGD | None = None) -> None:
        self.settings = settings if settings is not None else DPSGD()

    def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome:
        from fedloom.torch.trainers import task_generator, task_optimizer

        if float(ins.config.get("proximal_mu", 0.0)) > 0 and "proximal_mu" not in _warned:
            _warned.add("proximal_mu")
            log.warning("DP-SGD trains the data loss only: the task's proximal_mu (FedProx) is not applied")
        if self.settings.reproducible_noise:
            generator = task_generator(ins.config)  # insecure-reproducible: the server knows the task seed
        else:
            generator = secure_generator()
        optimizer = task_optimizer(ctx, ins.config)
        loss, metrics = train_dp_sgd(ctx, self.settings, optimizer, ins, generator)
        return TrainOutcome(loss, metrics)

    def __repr__(self) -> str:
        return f"DPSGDTrainer({self.settings!r})"


def secure_generator() -> torch.Generator:
    """A ``torch.Generator`` seeded with 64 bits from the OS CSPRNG (never from the run or task seed)."""
    import torch

    return torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))


def train_dp_sgd(ctx: TrainContext, settings: DPSGD, optimizer: torch.optim.Optimizer, ins: FitIns,
                 generator: torch.Generator) -> tuple[float, Metrics]:
    """Train ``ctx.model`` with Opacus DP-SGD per the task; returns last-epoch loss and metrics.

    ``generator`` orders the Poisson batches and seeds the noise (:func:`secure_generator` unless
    the settings ask for reproducible, not private, noise).
    """
    import numpy as np
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    from fedloom.privacy.accountant import epsilon
    from fedloom.torch.training import TensorData

    config = ins.config
    data = ctx.train_data
    if not isinstance(data, TensorData):
        raise ConfigError("DP-SGD with fedloom needs in-memory (x, y) training data, not a DataLoader")
    batch_size = ctx.batch_size_for(config)
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=batch_size, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns about secure_mode; docs/privacy.md states the caveat
        engine = PrivacyEngine(accountant="rdp")
        model, dp_opt, dp_loader = engine.make_private(
            module=ctx.model, optimizer=optimizer, data_loader=loader,
            noise_multiplier=settings.noise_multiplier, max_grad_norm=settings.max_grad_norm,
            noise_generator=generator,
        )
    steps, last = 0, 0.0
    try:
        model.train()
        for _ in range(ctx.epochs_for(config)):
            total, count = 0.0, 0
            for xb, yb in dp_loader:
                if len(xb) == 0:
                    continue
                xb, yb = xb.to(ctx.device), yb.to(ctx.device)
                dp_opt.zero_grad(set_to_none=True)
                loss = ctx.loss_fn(model(xb), yb)
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
    entry = ctx.state.get(_STEPS_KEY)
    done = int(entry["steps"][0]) + steps if entry is not None else steps
    ctx.state[_STEPS_KEY] = Parameters({"steps": np.array([done], np.int64)})
    eps = epsilon(noise_multiplier=settings.noise_multiplier, sampling_rate=sample_rate, steps=done,
                  delta=settings.delta) if settings.noise_multiplier > 0 else float("inf")
    return last, {"dp_sgd_epsilon": eps}
