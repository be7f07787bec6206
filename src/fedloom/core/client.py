"""The client interface: the code a data owner runs, unchanged in simulation and deployment."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from fedloom.core.parameters import Parameters
from fedloom.core.results import as_evaluate_res, as_fit_res, as_parameters
from fedloom.core.types import ClientId, Config, EvaluateRes, FitIns, FitRes

__all__ = ["Client", "ClientFn", "ClientWrapper", "CheckedClient", "as_client"]


class Client(ABC):
    """A participant that trains and evaluates a model on data that never leaves it.

    Subclass and implement the three methods, or use :class:`fedloom.TorchClient` for the common
    PyTorch case. ``config`` carries the server's instructions for this task; well-known keys are
    ``round``, ``seed``, ``local_epochs``, ``lr`` and ``batch_size``; strategies may add their own.

    ``parameters`` arrive as :class:`~fedloom.core.parameters.Parameters` (an ordered mapping of
    name -> numpy array; :func:`fedloom.torch.load_parameters` copies them into a module).
    ``fit`` may return a :class:`~fedloom.core.types.FitRes` or a tuple ``(parameters,
    num_examples, metrics)``, where ``parameters`` is ``Parameters``, a ``state_dict`` or a list
    of arrays in the global model's order; ``evaluate`` an :class:`~fedloom.core.types.EvaluateRes`
    or ``(loss, num_examples, metrics)``. They are converted once, on the client
    (:mod:`fedloom.core.results`); anything else fails that client's task with a message saying
    what was expected. An exception raised in ``fit`` fails only that client's task, reported as
    ``client 0 failed in fit: KeyError: 'lr'``.

    Example:
        >>> import numpy as np
        >>> class Constant(Client):
        ...     def get_parameters(self, config): return Parameters({"w": np.zeros(2)})
        ...     def fit(self, parameters, config): return [np.ones(2)], 10, {"note": "ok"}
        ...     def evaluate(self, parameters, config): return 0.5, 10, {"accuracy": 0.9}
        >>> Constant().fit_task(FitIns(Parameters({"w": np.zeros(2)}), {})).parameters["w"].tolist()
        [1.0, 1.0]
    """

    @abstractmethod
    def get_parameters(self, config: Config) -> Parameters:
        """Return the client's current model parameters (used to initialise the global model)."""

    @abstractmethod
    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        """Train starting from ``parameters`` on local data; return the new parameters (see the class
        docstring for the forms accepted)."""

    @abstractmethod
    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        """Evaluate ``parameters`` on local held-out data."""

    def fit_task(self, ins: FitIns) -> FitRes:
        """Run one training task; what every backend calls.

        The default ignores the task's side payloads, calls :meth:`fit` and converts what it returns
        (:func:`~fedloom.core.results.as_fit_res`). Clients of strategies that send ``ins.extras``
        (SCAFFOLD's server control variate, ...) override this, and client wrappers (stragglers,
        attackers) forward it.
        """
        return as_fit_res(self.fit(ins.parameters, ins.config), ins.parameters)


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


class CheckedClient(ClientWrapper):
    """Your client, with every result converted to fedloom's messages (:mod:`fedloom.core.results`).

    ``inner`` may be any object with ``fit``/``evaluate`` (and optionally ``get_parameters``) methods,
    a :class:`Client` subclass or not: :func:`as_client` wraps what a ``module:factory`` returns.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get_parameters(self, config: Config) -> Parameters:
        getter = getattr(self.inner, "get_parameters", None)
        if getter is None:
            raise AttributeError(f"{type(self.inner).__name__} has no get_parameters; give the run initial "
                                 "parameters (--initial-parameters module:factory)")
        return as_parameters(getter(config), what="get_parameters")

    def fit_task(self, ins: FitIns) -> FitRes:
        task = getattr(self.inner, "fit_task", None)
        res = task(ins) if task is not None else self.inner.fit(ins.parameters, ins.config)
        return as_fit_res(res, ins.parameters)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return as_evaluate_res(self.inner.evaluate(parameters, config))


def as_client(obj: object, *, where: str = "client_fn") -> Client:
    """``obj`` as a :class:`Client` whose results are always fedloom's messages.

    Raises:
        TypeError: ``obj`` has no ``fit`` or ``evaluate`` method (saying what ``where`` returned).
    """
    if isinstance(obj, CheckedClient):
        return obj
    missing = [m for m in ("fit", "evaluate") if not callable(getattr(obj, m, None))]
    if missing:
        raise TypeError(f"{where} returned {type(obj).__name__}, which has no {' or '.join(missing)} method; "
                        "return a fedloom Client (get_parameters, fit, evaluate)")
    return CheckedClient(obj)


ClientFn = Callable[[ClientId], Client]
"""A factory that builds the client for an id, lazily: simulation of 10,000 clients builds only the
ones sampled in a round."""
