"""Simulated stragglers: devices that cannot finish the requested local work in a round.

Protocol of the FedProx paper (Li et al., "Federated Optimization in Heterogeneous Networks",
MLSys 2020, arXiv:1812.06127, Section 5.2): in each round a fraction of the selected devices are
stragglers and complete only ``e ~ U{1, ..., E-1}`` local epochs instead of ``E``. FedProx
aggregates their partial work; FedAvg drops them. Here a strategy that accepts partial work says
so with ``accept_partial_work=True`` in the fit config (:class:`~fedloom.strategies.FedProx` does);
under any other strategy a straggler fails the task, which the round loop records as a failure,
exactly like a device missing its deadline. ``mode="drop"`` makes every straggler fail.

Whether a client straggles is drawn independently for each task from the task seed (so every
backend and a resumed run see the same stragglers); the paper fixes the count per round instead,
so the number of stragglers per round here is Binomial(sampled, fraction).

Example:
    >>> STRAGGLER_MODES.names()
    ['epochs', 'drop']
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedloom.core.client import Client
from fedloom.core.types import FitIns, FitRes
from fedloom.errors import ConfigError
from fedloom.scenarios.base import ClientWrapper
from fedloom.scenarios.registry import STRAGGLER_MODES

__all__ = ["STRAGGLER_MODES", "StragglerClient", "StragglerDropped", "is_straggler"]


_STREAM = 0x57A6  # separates the straggler draw from every other use of the task seed


class StragglerDropped(RuntimeError):
    """A straggler did not deliver in time (its task counts as a failure)."""


def is_straggler(task_seed: int, fraction: float) -> bool:
    """Whether the task with this seed straggles (deterministic)."""
    if fraction <= 0:
        return False
    return bool(np.random.default_rng([_STREAM, task_seed]).random() < fraction)


class StragglerClient(ClientWrapper):
    """Make ``inner`` straggle in a ``fraction`` of its tasks.

    Args:
        inner: The client.
        fraction: Probability that a task straggles, in ``[0, 1]``.
        mode: ``"epochs"`` (partial work, kept only where accepted) or ``"drop"`` (always fails).
        local_epochs: Epochs asked for when the task config does not say.
    """

    def __init__(self, inner: Client, *, fraction: float, mode: str = "epochs", local_epochs: int = 1) -> None:
        super().__init__(inner)
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"stragglers must be a fraction in [0, 1], got {fraction}")
        if mode not in STRAGGLER_MODES:
            raise ConfigError(f"unknown straggler_mode {mode!r}; choose one of {list(STRAGGLER_MODES)}")
        self.fraction = fraction
        self.mode = mode
        self.local_epochs = local_epochs

    def fit_task(self, ins: FitIns) -> FitRes:
        seed = int(ins.config.get("seed", 0))
        if not is_straggler(seed, self.fraction):
            res = self.inner.fit_task(ins)
            res.metrics["straggler"] = 0
            return res
        if self.mode == "drop" or not ins.config.get("accept_partial_work", False):
            raise StragglerDropped("straggler: did not finish its local work in time")
        epochs_asked = int(ins.config.get("local_epochs", self.local_epochs))
        rng = np.random.default_rng([_STREAM, seed, 1])
        epochs = int(rng.integers(1, epochs_asked)) if epochs_asked > 1 else 1
        res = self.inner.fit_task(dataclasses.replace(ins, config={**ins.config, "local_epochs": epochs}))
        res.metrics["straggler"] = 1
        res.metrics["straggler_epochs"] = epochs
        return res
