"""FedPer: a shared body, federated, and a personal head that never leaves the client.

Paper: Manoj Ghuhan Arivazhagan, Vinay Aggarwal, Aaditya Kumar Singh, Sunav Choudhary,
"Federated Learning with Personalization Layers", arXiv:1912.00818 (2019).

The server's global model is the body only (the configured run drops the head entries from the
initial model, so the server state, the checkpoints and every message hold no head). Each task
the client joins the received body with its own head (stored in its state; at first the initial
model's head), trains both with the strategy's local trainer and returns the body; the head is
kept for the next round. Evaluation reports the body with the client's head (``loss``,
``accuracy``; the same numbers again as ``personal_*``, since that is the personalized model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.personalization.base import head_names, personal_metrics, shared_parameters
from fedloom.torch.params import module_parameters
from fedloom.torch.training import num_examples

if TYPE_CHECKING:
    from fedloom.core.trainer import TrainOutcome
    from fedloom.personalization.client import PersonalClient

__all__ = ["build", "FedPer", "HEAD"]

HEAD = "personal_head"
"""Client-state entry holding the client's head."""


class FedPer:
    """Share the body, keep the head (``personal_layers``: parameter-name prefixes; empty = the last layer)."""

    name = "fedper"

    def __init__(self, personal_layers: Sequence[str] = ()) -> None:
        self.personal_layers = tuple(personal_layers)

    def head(self, names: Sequence[str]) -> list[str]:
        """The personal entries of a model with these entries."""
        return head_names(names, self.personal_layers)

    def shared(self, names: Sequence[str]) -> list[str]:
        head = set(self.head(names))
        return [n for n in names if n not in head]

    def whole(self, client: PersonalClient, body: Parameters) -> Parameters:
        """The received body joined with the client's head (the initial model's head before its first task)."""
        client.check_received(body)
        head = client.state.get(HEAD)
        if head is None:
            head = shared_parameters(client.initial_parameters, self.head(client.names))
        return Parameters({n: body[n] if n in body else head[n] for n in client.names})

    def fit(self, client: PersonalClient, ins: FitIns) -> FitRes:
        whole = self.whole(client, ins.parameters)
        client.load(whole)
        before = client.initial_loss_metrics(ins)
        client.model.train()  # an evaluation may have left the module in eval mode (DP-SGD refuses it)
        outcome = self.train(client, dataclasses.replace(ins, parameters=whole))
        after = module_parameters(client.model)
        names = client.names
        client.state[HEAD] = shared_parameters(after, self.head(names))
        return FitRes(shared_parameters(after, self.shared(names)), num_examples(client.train_data),
                      {"train_loss": outcome.loss, **outcome.metrics, **before}, dict(outcome.extras))

    def train(self, client: PersonalClient, ins: FitIns) -> TrainOutcome:
        """Local training of the whole model (loaded already): the strategy's trainer, body and head together."""
        return client.trainer.train(client.context(), ins)

    def evaluate(self, client: PersonalClient, parameters: Parameters, config: Config) -> EvaluateRes:
        client.load(self.whole(client, parameters))
        loss, n, metrics = client.evaluate_loaded()
        return EvaluateRes(loss, n, {**metrics, **personal_metrics(loss, metrics)})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(personal_layers={self.personal_layers})"


def build(options: Any) -> FedPer:
    """The method from a run's :class:`~fedloom.personalization.options.PersonalizationOptions`."""
    return FedPer(options.layer_prefixes)
