"""The client wrapper all scenarios build on: behaves like the client it wraps."""

from __future__ import annotations

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes

__all__ = ["ClientWrapper"]


class ClientWrapper(Client):
    """Delegates everything to ``inner``; subclasses change :meth:`fit_task`.

    Wrappers forward :meth:`fit_task` (not :meth:`fit`) so that side payloads such as SCAFFOLD's
    control variate reach the wrapped client.
    """

    def __init__(self, inner: Client) -> None:
        self.inner = inner

    def get_parameters(self, config: Config) -> Parameters:
        return self.inner.get_parameters(config)

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return self.fit_task(FitIns(parameters, config))

    def fit_task(self, ins: FitIns) -> FitRes:
        return self.inner.fit_task(ins)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return self.inner.evaluate(parameters, config)
