"""The default trainer of a :class:`~fedloom.torch.TorchClient`: whatever the task asks for.

A deployed client is usually a plain ``TorchClient``; the server's strategy decides the algorithm.
:class:`AutoTrainer` reads it off each task, so the same client serves FedAvg, FedProx and
SCAFFOLD servers.
"""

from __future__ import annotations

from fedloom.core.trainer import TRAINERS, LocalTrainer, TrainContext, TrainOutcome
from fedloom.core.types import FitIns
from fedloom.torch.scaffold import SCAFFOLD_C, ScaffoldTrainer
from fedloom.torch.trainers import EpochTrainer, ProximalTrainer, config_mu

__all__ = ["AutoTrainer"]


@TRAINERS.register("auto")
class AutoTrainer:
    """TorchClient's default: plain epochs, or the algorithm the task asks for.

    A task carrying SCAFFOLD's server control variate (``extras["scaffold_c"]``) runs
    :class:`~fedloom.torch.scaffold.ScaffoldTrainer`; one whose config has ``proximal_mu > 0`` runs
    :class:`ProximalTrainer`; any other runs :class:`EpochTrainer`. So a plain ``TorchClient``
    (e.g. a deployed one) serves FedAvg, FedProx and SCAFFOLD servers alike.
    """

    vectorizable: bool = False  # it decides per task: ask for_task(ins)

    def __init__(self) -> None:
        self._epochs = EpochTrainer()
        self._proximal = ProximalTrainer()
        self._scaffold: LocalTrainer | None = None

    def for_task(self, ins: FitIns) -> LocalTrainer:
        """The trainer this task runs (see the class docstring)."""
        if SCAFFOLD_C in ins.extras:
            if self._scaffold is None:
                self._scaffold = ScaffoldTrainer()
            return self._scaffold
        if config_mu(ins.config) > 0:
            return self._proximal
        return self._epochs

    def why(self, ins: FitIns) -> str:
        """What in the task made :meth:`for_task` choose what it chose (for messages)."""
        if SCAFFOLD_C in ins.extras:
            return f"the task carries extras[{SCAFFOLD_C!r}]"
        if config_mu(ins.config) > 0:
            return f"the task config has proximal_mu={config_mu(ins.config)}"
        return "the task asks for plain epochs"

    def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome:
        return self.for_task(ins).train(ctx, ins)

    def __repr__(self) -> str:
        return "AutoTrainer()"
