"""Shared pieces of the attacker tests."""

from __future__ import annotations

import numpy as np

from fedloom.core import Client, Config, EvaluateRes, FitRes, Parameters


class Delta(Client):
    """A client whose 'training' adds a fixed delta to the global model (10 examples)."""

    def __init__(self, delta: np.ndarray) -> None:
        self.delta = delta

    def get_parameters(self, config: Config) -> Parameters:
        return Parameters({"w": np.zeros_like(self.delta)})

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return FitRes(Parameters({"w": parameters["w"] + self.delta}), 10)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return EvaluateRes(0.0, 1, {})
