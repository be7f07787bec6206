"""Local fine-tuning: the global model, trained ``k`` more SGD steps on the client's data before it is used.

Training is FedAvg's (any strategy); at evaluation each client evaluates the global model
(``loss``, ``accuracy``) and the global model after ``finetune_steps`` local steps
(``personal_loss``, ``personal_accuracy``). Nothing of the fine-tuned model persists or leaves the
client: the next task starts from the next global model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.errors import ConfigError
from fedloom.personalization.base import personal_metrics
from fedloom.torch.trainers import task_generator, task_optimizer
from fedloom.torch.training import TensorData

if TYPE_CHECKING:
    from fedloom.core.trainer import TrainContext
    from fedloom.personalization.client import PersonalClient

__all__ = ["build", "FineTune", "sgd_steps"]


class FineTune:
    """Evaluate the global model, and the global model fine-tuned ``steps`` local SGD steps.

    Args:
        steps: Minibatch steps of the client's optimizer at its learning rate.
    """

    name = "finetune"

    def __init__(self, steps: int = 5) -> None:
        if steps < 1:
            raise ConfigError(f"finetune steps must be >= 1, got {steps}")
        self.steps = steps

    def shared(self, names: Sequence[str]) -> list[str]:
        return list(names)

    def fit(self, client: PersonalClient, ins: FitIns) -> FitRes:
        return client.plain_fit(ins)

    def evaluate(self, client: PersonalClient, parameters: Parameters, config: Config) -> EvaluateRes:
        glob = client.plain_evaluate(parameters, config)  # loads the global model
        sgd_steps(client.context(), config, self.steps)
        loss, _, metrics = client.evaluate_loaded()
        return EvaluateRes(glob.loss, glob.num_examples, {**glob.metrics, **personal_metrics(loss, metrics)})

    def __repr__(self) -> str:
        return f"FineTune(steps={self.steps})"


def sgd_steps(ctx: TrainContext, config: Config, steps: int) -> None:
    """``steps`` minibatch steps of the client's loss on its training data (batches in the task seed's order)."""
    model = ctx.model
    model.train()
    optimizer = task_optimizer(ctx, config)
    batches = _cycle(ctx.train_data, ctx.batch_size_for(config), task_generator(config))
    for _, (xb, yb) in zip(range(steps), batches, strict=False):
        xb, yb = xb.to(ctx.device), yb.to(ctx.device)
        optimizer.zero_grad(set_to_none=True)
        ctx.loss_fn(model(xb), yb).backward()
        optimizer.step()


def _cycle(data: Any, batch_size: int, generator: torch.Generator) -> Iterator[Any]:
    while True:
        seen = False
        for batch in (data.batches(batch_size, generator) if isinstance(data, TensorData) else data):
            seen = True
            yield batch
        if not seen:
            return


def build(options: Any) -> FineTune:
    """The method from a run's :class:`~fedloom.personalization.options.PersonalizationOptions`."""
    return FineTune(options.finetune_steps)
