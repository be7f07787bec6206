"""The client half of an algorithm: a :class:`LocalTrainer` runs one task's local training.

A strategy is two halves. The server half (sampling, aggregation, the server step) is a
:class:`~fedloom.core.strategy.Strategy`; the client half (what a client does with the model it
receives: plain epochs, FedProx's proximal term, SCAFFOLD's corrected gradients, DP-SGD) is a
:class:`LocalTrainer`, in the shape of fedjax's client trainers. :class:`~fedloom.TorchClient` owns
the data, model, loss and optimizer factory; for every task it loads the global parameters into
its model and hands its pieces (a :class:`TrainContext`) and the task (:class:`FitIns`) to its
trainer, which trains the model in place and returns a small :class:`TrainOutcome`. The client
then reports the model's parameters, the outcome's metrics (``train_loss`` first) and extras.

Strategies name their client half beside their server code (``FedProx.local_trainer ==
"fedprox"``); :data:`TRAINERS` maps names to trainer classes. The built-in trainers are
``epochs``, ``fedprox`` (:mod:`fedloom.torch.trainers`), ``scaffold`` (:mod:`fedloom.torch.scaffold`),
``dp_sgd`` (:mod:`fedloom.privacy.opacus`), ``label_flip`` (:mod:`fedloom.scenarios.attacks`)
and ``auto`` (what a ``TorchClient`` without ``trainer=`` runs).

This module imports no machine-learning framework: a trainer's context holds the framework's
objects (for ``TorchClient``: an ``nn.Module``, tensors, a torch device) typed as ``Any``.

Example: a trainer that skips training and reports how many examples it saw.

    >>> from fedloom.core import FitIns, Parameters
    >>> class CountOnly:
    ...     vectorizable = False
    ...     def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome:
    ...         return TrainOutcome(loss=0.0, metrics={"seen": len(ctx.train_data)})
    >>> ctx = TrainContext(model=None, train_data=[1, 2, 3], loss_fn=None, optimizer_fn=None, device="cpu",
    ...                    local_epochs=1, batch_size=32, lr=0.1, task="classification", state={})
    >>> CountOnly().train(ctx, FitIns(Parameters(), {"local_epochs": 2})).metrics
    {'seen': 3}
    >>> ctx.epochs_for({"local_epochs": 2}), ctx.lr_for({})
    (2, 0.1)

With PyTorch, pass it as ``TorchClient(..., trainer=CountOnly())``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fedloom.core.client_state import ClientState
from fedloom.core.parameters import Parameters
from fedloom.core.registry import Registry
from fedloom.core.types import Config, FitIns, Metrics

__all__ = ["LocalTrainer", "TrainContext", "TrainOutcome", "TRAINERS", "trainer_for_task", "describe_trainer"]


@dataclass
class TrainContext:
    """What a client hands its trainer: its own pieces, and its defaults for the task config.

    For :class:`~fedloom.TorchClient` the fields hold PyTorch objects; the model already holds the
    task's global parameters when the trainer gets it, and the trainer trains it in place.

    Args:
        model: The client's model (``torch.nn.Module``), holding the task's parameters.
        train_data: The local training data (``TensorData`` or a ``DataLoader``).
        loss_fn: ``(output, target) -> loss``, mean over the batch.
        optimizer_fn: ``(params, lr) -> optimizer``.
        device: Where the model lives (``torch.device``).
        local_epochs: Epochs when the task config has no ``local_epochs``.
        batch_size: Batch size when the task config has no ``batch_size``.
        lr: Learning rate when the task config has no ``lr``.
        task: ``"classification"`` or ``"regression"``.
        state: The client's persistent state (control variates, step counts), kept across tasks.
    """

    model: Any
    train_data: Any
    loss_fn: Callable[[Any, Any], Any]
    optimizer_fn: Callable[[list[Any], float], Any]
    device: Any
    local_epochs: int
    batch_size: int
    lr: float
    task: str
    state: ClientState

    def epochs_for(self, config: Config) -> int:
        """Local epochs of a task: the config's ``local_epochs``, else the client's default."""
        return int(config.get("local_epochs", self.local_epochs))

    def batch_size_for(self, config: Config) -> int:
        """Batch size of a task: the config's ``batch_size``, else the client's default."""
        return int(config.get("batch_size", self.batch_size))

    def lr_for(self, config: Config) -> float:
        """Learning rate of a task: the config's ``lr``, else the client's default."""
        return float(config.get("lr", self.lr))

    @staticmethod
    def seed_for(config: Config) -> int:
        """The task's seed (0 when the config has none): seeds batch order and any noise."""
        return int(config.get("seed", 0))


@dataclass
class TrainOutcome:
    """What a trainer returns: the last epoch's mean loss, extra metrics, and side payloads.

    ``metrics`` are reported after ``train_loss`` (e.g. ``dp_sgd_epsilon``); ``extras`` become
    ``FitRes.extras`` (e.g. SCAFFOLD's ``scaffold_delta_c``).
    """

    loss: float
    metrics: Metrics = field(default_factory=dict)
    extras: dict[str, Parameters] = field(default_factory=dict)


@runtime_checkable
class LocalTrainer(Protocol):
    """Runs one task's local training: ``train(ctx, ins) -> TrainOutcome``.

    ``train`` trains ``ctx.model`` in place from the parameters it holds (the task's global
    parameters), reading the task's config and extras from ``ins`` and the client's pieces and
    persistent ``ctx.state`` from ``ctx``. It must be deterministic given the task's ``seed``.

    ``vectorizable`` says whether the trainer is exactly plain SGD-style epochs of the client's
    loss (batches drawn from a generator seeded with the task seed, one optimizer step per batch, no
    other objective term, state or extras), so that the vectorized backend may train it as part of
    a cohort instead. Only :class:`~fedloom.torch.trainers.EpochTrainer` says ``True``.

    A trainer that only *chooses* another trainer per task (the ``auto`` trainer) may also define
    ``for_task(ins) -> LocalTrainer``; :func:`trainer_for_task` follows it.
    """

    @property
    def vectorizable(self) -> bool: ...

    def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome: ...


def trainer_for_task(trainer: LocalTrainer, ins: FitIns) -> LocalTrainer:
    """The trainer that will actually run ``ins``: follows ``for_task`` of choosing trainers."""
    for _ in range(16):  # a chooser returning itself (or a cycle) must not hang the caller
        choose = getattr(trainer, "for_task", None)
        if choose is None:
            return trainer
        chosen = choose(ins)
        if chosen is trainer:
            return trainer
        trainer = chosen
    return trainer


def describe_trainer(trainer: object) -> str:
    """``ClassName (first line of its docstring)``, for messages."""
    doc = (type(trainer).__doc__ or "").strip().split("\n", 1)[0].strip().rstrip(".")
    return f"{type(trainer).__name__} ({doc})" if doc else type(trainer).__name__


TRAINERS: Registry[Callable[..., LocalTrainer]] = Registry(
    "trainer",
    package="fedloom.torch",
    modules=[
        "fedloom.torch.trainers",
        "fedloom.torch.scaffold",
        "fedloom.torch.auto",
        "fedloom.privacy.opacus",
        "fedloom.scenarios.attacks",
    ],
)
"""Trainer classes by name (``TRAINERS.get("fedprox")()`` builds FedProx's client half). A
strategy names its client half in its ``local_trainer`` class attribute."""
