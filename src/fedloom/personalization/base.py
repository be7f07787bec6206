"""What a personalization method is, and the helpers the methods share.

A method is the client side of personalization: it decides which entries of the model are
federated (:meth:`Personalization.shared`), what a training task does (:meth:`Personalization.fit`)
and what an evaluation reports (:meth:`Personalization.evaluate`: the global model's ``loss`` and
metrics as usual, plus the personalized model's as ``personal_loss``, ``personal_accuracy``, ...).
Its per-client state (a head, a personal model) lives in the client's state entry
(:class:`~fedloom.core.client_state.ClientStateStore` in simulation), which checkpoints carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes, Metrics, Scalar
from fedloom.errors import ConfigError

PersonalClient = Any
"""A :class:`fedloom.personalization.client.PersonalClient` (not imported: that module imports this one)."""

__all__ = ["Personalization", "head_names", "personal_metrics", "shared_parameters"]


class Personalization(Protocol):
    """The client side of a personalization method (see the module docstring)."""

    name: str

    def shared(self, names: Sequence[str]) -> list[str]:
        """The entries of the model (by state-dict name) that are federated; the rest never leave the client."""
        ...

    def fit(self, client: PersonalClient, ins: FitIns) -> FitRes:
        """Run one training task; the result holds only the shared entries."""
        ...

    def evaluate(self, client: PersonalClient, parameters: Parameters, config: Config) -> EvaluateRes:
        """Evaluate the global model and the personalized one (``personal_*`` metrics) on local held-out data."""
        ...


def head_names(names: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    """The entries ``prefixes`` select (a prefix ``p`` selects ``p`` and ``p.*``); no prefixes: the last layer
    (the entries of the module that holds the last entry).

    Raises:
        ConfigError: a prefix selects nothing, or the head would be the whole model.

    Example:
        >>> head_names(["0.weight", "0.bias", "2.weight", "2.bias"], [])
        ['2.weight', '2.bias']
    """
    names = list(names)
    if not names:
        raise ConfigError("the model has no parameters to personalize")
    if not prefixes:
        last = names[-1].rsplit(".", 1)[0] if "." in names[-1] else names[-1]
        prefixes = [last]
    unmatched = [p for p in prefixes if not any(_under(n, p) for n in names)]
    if unmatched:
        raise ConfigError(f"--personal-layers {','.join(unmatched)} matches no parameter of the model; its "
                          f"parameters are {', '.join(names)}")
    head = [n for n in names if any(_under(n, p) for p in prefixes)]
    if len(head) == len(names):
        raise ConfigError(f"--personal-layers selects every parameter ({', '.join(names)}): nothing would be "
                          "federated. Keep the output layer personal and share the rest (a model with more than "
                          "one layer, e.g. --model mlp)")
    return head


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def shared_parameters(full: Parameters, names: Sequence[str]) -> Parameters:
    """The entries of ``full`` named in ``names``, in the model's order."""
    keep = set(names)
    return Parameters({k: v for k, v in full.items() if k in keep})


def personal_metrics(loss: float, metrics: Mapping[str, Scalar]) -> Metrics:
    """``personal_loss`` and ``personal_<metric>`` for a personalized model's evaluation."""
    return {"personal_loss": float(loss), **{f"personal_{k}": v for k, v in metrics.items()}}

