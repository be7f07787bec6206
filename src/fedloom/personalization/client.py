"""A :class:`~fedloom.torch.TorchClient` with a personalization method: same constructor, same ``Client`` API.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from fedloom.personalization.fedper import FedPer
    >>> x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    >>> model = lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> client = PersonalClient(method=FedPer(), model_fn=model, train_data=(x, y))
    >>> sorted(client.get_parameters({}))  # the head (layer 2) never leaves the client
    ['0.bias', '0.weight']
"""

from __future__ import annotations

from typing import Any

from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.errors import ValidationError
from fedloom.personalization.base import Personalization, shared_parameters
from fedloom.torch.client import TorchClient
from fedloom.torch.params import load_parameters, module_parameters
from fedloom.torch.training import evaluate_model

__all__ = ["PersonalClient"]


class PersonalClient(TorchClient):
    """A :class:`TorchClient` whose tasks go through a personalization ``method``.

    Args:
        method: The personalization method (:mod:`fedloom.personalization`).
        initial_parameters: The whole initial model (heads included), where personal parts start;
            default: the model as built now (pass it when ``model_fn`` shares one module between
            clients, as simulations do).
        **kwargs: :class:`TorchClient` arguments; ``state`` holds the personal parts across rounds.
    """

    def __init__(self, *, method: Personalization, initial_parameters: Parameters | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.method = method
        self._initial = initial_parameters

    @property
    def initial_parameters(self) -> Parameters:
        """The whole initial model (what personal parts start from)."""
        if self._initial is None:
            self._initial = module_parameters(self.model)
        return self._initial

    @property
    def names(self) -> list[str]:
        """The model's state-dict entries, in order."""
        return list(self.model.state_dict())

    def shared_names(self) -> list[str]:
        """The entries this client federates."""
        return self.method.shared(self.names)

    def get_parameters(self, config: Config) -> Parameters:
        return shared_parameters(module_parameters(self.model), self.shared_names())

    def fit_task(self, ins: FitIns) -> FitRes:
        return self.method.fit(self, ins)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return self.method.evaluate(self, parameters, config)

    # -- helpers for methods -------------------------------------------------------------------
    def plain_fit(self, ins: FitIns) -> FitRes:
        """The global model's training task, as a plain :class:`TorchClient` runs it."""
        return TorchClient.fit_task(self, ins)

    def plain_evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        """The global model's evaluation, as a plain :class:`TorchClient` runs it."""
        return TorchClient.evaluate(self, parameters, config)

    def check_received(self, parameters: Parameters) -> None:
        """Refuse a global model that is not exactly the shared entries (a server configured without the
        same ``--personalization`` would send heads, or miss entries)."""
        want, got = self.shared_names(), list(parameters)
        if sorted(got) != sorted(want):
            extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
            raise ValidationError(
                f"{self.method.name}: the server sent entries {extra} that stay on the client and lacks {missing}; "
                "configure the server with the same --personalization and --personal-layers")

    def load(self, parameters: Parameters) -> None:
        """Load a whole model into the client's module."""
        load_parameters(self.model, parameters)

    def evaluate_loaded(self) -> tuple[float, int, dict[str, float]]:
        """Loss, example count and metrics of the model as loaded, on the local held-out data."""
        data = self.test_data if self.test_data is not None else self.train_data
        return evaluate_model(self.model, data, loss_fn=self.loss_fn, task=self.task, device=self.device)
