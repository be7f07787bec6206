"""Round timing excludes the wait for clients; who took part is recorded per round and client."""

from __future__ import annotations

import time

import numpy as np

from fedloom.backends.inline import InlinePool
from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import EvaluateRes, FitRes
from fedloom.engine import FederatedLoop
from fedloom.runs.participation import ParticipationPool
from fedloom.runs.store import RunStore
from fedloom.strategies import FedAvg


class Mean(Client):
    def __init__(self, cid: str) -> None:
        self.cid = cid

    def get_parameters(self, config):
        return Parameters({"w": np.zeros(2)})

    def fit(self, parameters, config):
        if self.cid == "2" and config["round"] == 2:
            raise RuntimeError("out of memory")
        return FitRes(Parameters({"w": parameters["w"] + 1}), 1)

    def evaluate(self, parameters, config):
        return EvaluateRes(0.0, 1)


class SlowToGather(ParticipationPool):
    """Waits in available() as a deployment pool waits for clients to connect."""

    def available(self):
        time.sleep(0.3)
        return super().available()


def test_wall_s_excludes_the_wait_for_clients_and_participation_is_recorded(tmp_path):
    pool = SlowToGather(InlinePool(Mean, 3))
    store = RunStore(tmp_path)
    loop = FederatedLoop(FedAvg(fraction_evaluate=0.0), pool, num_rounds=2)  # fit participation only
    result = loop.run(Parameters({"w": np.zeros(2)}))
    assert loop.last_wait_s >= 0.3
    assert all(h.metrics["wall_s"] < 0.3 for h in result.history)  # the work alone
    store.write_participation(pool.take())
    assert store.read_participation() == {
        "0": {"fit_rounds": [1, 2], "evaluate_rounds": [], "failures": []},
        "1": {"fit_rounds": [1, 2], "evaluate_rounds": [], "failures": []},
        "2": {"fit_rounds": [1], "evaluate_rounds": [],
              "failures": [{"round": 2, "task": "fit", "reason": "RuntimeError: out of memory"}]},
    }
