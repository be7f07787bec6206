"""FedRep: FedPer's split, with the head trained first (body frozen), then the body (head frozen).

Paper: Liam Collins, Hamed Hassani, Aryan Mokhtari, Sanjay Shakkottai, "Exploiting Shared
Representations for Personalized Federated Learning", ICML 2021, arXiv:2102.07078.

Each task: ``head_epochs`` epochs of the client's loss over the head alone, then the task's
local epochs over the body alone (the strategy's local trainer, so FedProx's term applies to
the body), and the body is returned. Head state and evaluation are FedPer's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fedloom.core.types import FitIns
from fedloom.errors import ConfigError
from fedloom.personalization.fedper import FedPer
from fedloom.torch.trainers import run_epochs

if TYPE_CHECKING:
    from torch import nn

    from fedloom.core.trainer import TrainOutcome
    from fedloom.personalization.client import PersonalClient

__all__ = ["build", "FedRep", "frozen"]


class FedRep(FedPer):
    """FedPer whose local update trains the head, then the body (``head_epochs``: epochs of the head phase)."""

    name = "fedrep"

    def __init__(self, personal_layers: Sequence[str] = (), head_epochs: int = 2) -> None:
        super().__init__(personal_layers)
        if head_epochs < 1:
            raise ConfigError(f"fedrep head_epochs must be >= 1, got {head_epochs}")
        self.head_epochs = head_epochs

    def train(self, client: PersonalClient, ins: FitIns) -> TrainOutcome:
        names = client.names
        head = set(self.head(names))
        model = client.model
        with frozen(model, [n for n in names if n not in head]):
            run_epochs(client.context(), {**ins.config, "local_epochs": self.head_epochs})
        with frozen(model, sorted(head)):
            return client.trainer.train(client.context(), dataclasses.replace(ins))


@contextmanager
def frozen(model: nn.Module, names: Sequence[str]) -> Iterator[None]:
    """Parameters ``names`` of ``model`` take no gradient steps inside the block (``requires_grad`` off)."""
    params = dict(model.named_parameters())
    chosen = [params[n] for n in names if n in params]
    was = [p.requires_grad for p in chosen]
    for p in chosen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(chosen, was, strict=True):
            p.requires_grad_(flag)


def build(options: Any) -> FedRep:
    """The method from a run's :class:`~fedloom.personalization.options.PersonalizationOptions`."""
    return FedRep(options.layer_prefixes, options.head_epochs)
