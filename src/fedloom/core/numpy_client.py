"""A framework-neutral client: named numpy arrays in and out, training on your own objects.

:class:`~fedloom.core.client.Client` already speaks numpy (:class:`~fedloom.core.parameters.Parameters`);
:class:`NumPyClient` removes the rest of the boilerplate for a model that is not PyTorch (a
scikit-learn estimator, a JAX or NumPy model, a wrapper around a C library). You write four short
methods on your own objects, and fedloom does the wiring every backend and the gRPC client need:

* :meth:`~NumPyClient.get_arrays` / :meth:`~NumPyClient.set_arrays`: your model's state as
  ``{name: np.ndarray}``. Before ``set_arrays`` is called the arrays received from the server are
  checked against the names your ``get_arrays`` returns (a server that sends another model's
  arrays fails the task with a message naming them, instead of writing garbage into your model);
* :meth:`~NumPyClient.train`: train in place for one task, return ``(num_examples, metrics)``;
* :meth:`~NumPyClient.test`: return ``(loss, num_examples, metrics)``.

Nothing here imports torch, so a process serving a NumPyClient never loads it.

Example:
    >>> import numpy as np
    >>> from fedloom.core.types import FitIns
    >>> class Mean(NumPyClient):
    ...     def __init__(self, data): self.data, self.mu = data, np.zeros(1)
    ...     def get_arrays(self): return {"mu": self.mu}
    ...     def set_arrays(self, arrays): self.mu = arrays["mu"].copy()
    ...     def train(self, config): self.mu = np.array([self.data.mean()]); return len(self.data), {}
    ...     def test(self, config): return float(((self.data - self.mu) ** 2).mean()), len(self.data), {}
    >>> res = Mean(np.array([1.0, 3.0])).fit_task(FitIns(Parameters({"mu": np.zeros(1)}), {}))
    >>> res.parameters["mu"].tolist(), res.num_examples
    ([2.0], 2)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping

import numpy as np

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitRes, Metrics
from fedloom.errors import ValidationError

__all__ = ["NumPyClient"]


class NumPyClient(Client):
    """A :class:`~fedloom.core.client.Client` whose model is a set of named numpy arrays.

    Subclasses implement :meth:`get_arrays`, :meth:`set_arrays`, :meth:`train` and :meth:`test`
    (see the module docstring). ``strict_names`` (default true): the arrays a task carries must have
    exactly the names ``get_arrays`` returns; a client whose layout legitimately changes (a tree
    ensemble that grows) sets it to false and checks what it receives itself.
    """

    strict_names: bool = True

    @abstractmethod
    def get_arrays(self) -> Mapping[str, np.ndarray]:
        """The model's current state, by name."""

    @abstractmethod
    def set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Load ``arrays`` (the global model of this task) into the model."""

    @abstractmethod
    def train(self, config: Config) -> tuple[int, Metrics]:
        """Train the model in place on local data; return ``(num_examples, metrics)``."""

    @abstractmethod
    def test(self, config: Config) -> tuple[float, int, Metrics]:
        """Evaluate the model on local held-out data; return ``(loss, num_examples, metrics)``."""

    # -- the Client interface, in terms of the four methods above -------------------------------
    def get_parameters(self, config: Config) -> Parameters:
        return Parameters({k: np.asarray(v) for k, v in self.get_arrays().items()})

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        self._load(parameters)
        num_examples, metrics = self.train(config)
        return FitRes(self.get_parameters(config), int(num_examples), dict(metrics))

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        self._load(parameters)
        loss, num_examples, metrics = self.test(config)
        return EvaluateRes(float(loss), int(num_examples), dict(metrics))

    def _load(self, parameters: Parameters) -> None:
        if self.strict_names:
            have, got = list(self.get_arrays()), list(parameters)
            if have != got:
                missing = [n for n in have if n not in parameters]
                extra = [n for n in got if n not in have]
                raise ValidationError(f"{type(self).__name__} received arrays that are not its model's: missing "
                                      f"{missing}, unexpected {extra}; the server and this client must use the "
                                      "same model spec")
        self.set_arrays(dict(parameters.items()))
