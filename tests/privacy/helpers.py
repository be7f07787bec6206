"""Toy clients and a dropout-injecting pool for the privacy tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedloom.backends import InlinePool
from fedloom.backends.base import PoolResult
from fedloom.core.client import Client
from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure
from fedloom.core.types import ClientId, Config, EvaluateRes, FitIns, FitRes
from fedloom.privacy.secagg import SecAggClient


class DeltaClient(Client):
    """Returns the global model plus a fixed delta (its 'training')."""

    def __init__(self, delta: np.ndarray, n: int) -> None:
        self.delta, self.n = delta, n

    def get_parameters(self, config: Config) -> Parameters:
        return Parameters({"w": np.zeros_like(self.delta, dtype=np.float32)})

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return FitRes(Parameters({"w": (parameters["w"] + self.delta).astype(np.float32)}), self.n, {"train_loss": 1.0})

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return EvaluateRes(0.0, 1, {})


class DropoutPool(InlinePool):
    """An inline pool in which chosen clients vanish at a chosen SecAgg stage."""

    def __init__(self, client_fn, num_clients: int, drop: dict[str, set[str]] | None = None) -> None:
        super().__init__(client_fn, num_clients)
        self.drop = drop or {}
        self.seen: list[tuple[str, ClientId, FitIns, FitRes | None]] = []

    def fit(self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected, timeout=None) -> PoolResult[FitRes]:
        stage = str(tasks[0][1].config.get("secagg_stage", "")) if tasks else ""
        gone = self.drop.get(stage, set())
        kept = [(cid, ins) for cid, ins in tasks if cid not in gone]
        out = super().fit(kept, expected=expected, timeout=timeout)
        out.failures.extend(Failure(cid, "dropped") for cid, _ in tasks if cid in gone)
        for cid, res in out.results:
            self.seen.append((stage, cid, dict(kept)[cid], res))
        return out


def secagg_clients(deltas: list[np.ndarray], counts: list[int]):
    store = ClientStateStore()

    def client_fn(cid: ClientId) -> Client:
        i = int(cid)
        return SecAggClient(DeltaClient(deltas[i], counts[i]), state=store.get(cid))

    return client_fn
