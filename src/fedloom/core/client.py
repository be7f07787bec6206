"""The client interface: the code a data owner runs, unchanged in simulation and deployment."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from fedloom.core.parameters import Parameters
from fedloom.core.types import ClientId, Config, EvaluateRes, FitIns, FitRes

__all__ = ["Client", "ClientFn", "ClientWrapper"]


class Client(ABC):
    """A participant that trains and evaluates a model on data that never leaves it.

    Subclass and implement the three methods, or use :class:`fedloom.TorchClient` for the common
    PyTorch case. ``config`` carries the server's instructions for this task; well-known keys are
    ``round``, ``seed``, ``local_epochs``, ``lr`` and ``batch_size``; strategies may add their own.
    """

    @abstractmethod
    def get_parameters(self, config: Config) -> Parameters:
        """Return the client's current model parameters (used to initialise the global model)."""

    @abstractmethod
    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        """Train starting from ``parameters`` on local data; return the new parameters."""

    @abstractmethod
    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        """Evaluate ``parameters`` on local held-out data."""

    def fit_task(self, ins: FitIns) -> FitRes:
        """Run one training task; what every backend calls.

        The default ignores the task's side payloads and calls :meth:`fit`. Clients of strategies
        that send ``ins.extras`` (SCAFFOLD's server control variate, ...) override this, and client
        wrappers (stragglers, attackers) forward it.
        """
        return self.fit(ins.parameters, ins.config)


class ClientWrapper(Client):
    """A client that behaves like ``inner``; subclasses change what they need (usually :meth:`fit_task`).

    Privacy, compression and scenario wrappers build on it. It forwards :meth:`fit_task` (not
    :meth:`fit`) so that side payloads such as SCAFFOLD's control variate reach the wrapped client.
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


ClientFn = Callable[[ClientId], Client]
"""A factory that builds the client for an id, lazily: simulation of 10,000 clients builds only the
ones sampled in a round."""
