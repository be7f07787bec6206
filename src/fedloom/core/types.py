"""Messages exchanged between the round loop and clients.

These are plain dataclasses of :class:`~fedloom.core.parameters.Parameters` and scalars, so every
transport (in-process, Ray, gRPC) can carry them without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedloom.core.parameters import Parameters

__all__ = ["Scalar", "Config", "Metrics", "ClientId", "FitIns", "FitRes", "EvaluateIns", "EvaluateRes"]

Scalar = bool | int | float | str
"""A value that can travel in a config or metrics map."""

Config = dict[str, Scalar]
"""Instructions from the server to a client for one task (e.g. ``{"local_epochs": 2}``)."""

Metrics = dict[str, Scalar]
"""Named scalar results a client or strategy reports."""

ClientId = str
"""A client's identity: its index as a string in simulation, its credential name in deployment."""


@dataclass
class FitIns:
    """What a client receives to train: global parameters and per-task config.

    ``extras`` carries named side payloads a strategy or protocol needs besides the model
    (SCAFFOLD's server control variate, SecAgg key material, HE ciphertexts); every transport
    carries them like parameters.
    """

    parameters: Parameters
    config: Config = field(default_factory=dict)
    extras: dict[str, Parameters] = field(default_factory=dict)


@dataclass
class FitRes:
    """What a client returns after training (``extras``: named side payloads, see :class:`FitIns`)."""

    parameters: Parameters
    num_examples: int
    metrics: Metrics = field(default_factory=dict)
    extras: dict[str, Parameters] = field(default_factory=dict)


@dataclass
class EvaluateIns:
    """What a client receives to evaluate: parameters and per-task config."""

    parameters: Parameters
    config: Config = field(default_factory=dict)


@dataclass
class EvaluateRes:
    """A client's (or the server's) evaluation: mean loss over ``num_examples`` and extra metrics."""

    loss: float
    num_examples: int
    metrics: Metrics = field(default_factory=dict)
