"""Flower's ``server_app.py``, ported: a custom strategy subclass and a central ``evaluate_fn``.

Flower                                          fedloom
----------------------------------------------  ------------------------------------------------
class LoggingLrDecayFedAvg(FedAvg)              the same subclass of fedloom.strategies.FedAvg
on_fit_config_fn=lambda rnd: {...}              override round_fit_config (or fit_config_fn=)
evaluate_fn(server_round, parameters_ndarrays,  evaluate_fn(server_round, parameters) returning a
            config) -> (loss, {"accuracy": a})    dict {"loss": ..., "accuracy": ...} (or the tuple)
ServerApp(server_fn=...) / ServerAppComponents  strategy = "server_app:LoggingLrDecayFedAvg" and
                                                  central_eval = "server_app:evaluate_fn" in
                                                  fedloom.toml: no server script
"""

from __future__ import annotations

import logging
from functools import cache

import numpy as np
from task import Net, load_centralized_testset, set_weights, test

from fedloom.strategies import FedAvg

log = logging.getLogger("server_app")


class LoggingLrDecayFedAvg(FedAvg):
    """FedAvg that decays the clients' learning rate every round and logs what each round did.

    fedloom builds it with the configured FedAvg arguments (fraction_fit, fit_config with lr,
    evaluate_fn, ...) and the extra keyword arguments it declares keep their defaults.
    """

    def __init__(self, *, lr_decay: float = 0.9, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.lr_decay = lr_decay

    def round_fit_config(self, state, rnd):  # noqa: ANN001, ANN201
        config = super().round_fit_config(state, rnd)
        config["lr"] = float(config["lr"]) * self.lr_decay ** (rnd - 1)
        return config

    def aggregate_fit(self, state, rnd, results, failures):  # noqa: ANN001, ANN201
        metrics = super().aggregate_fit(state, rnd, results, failures)
        metrics["lr"] = self.round_fit_config(state, rnd)["lr"]  # recorded as train_lr
        log.info("round %d: %d results, %d failures, lr %.4f", rnd, len(results), len(failures), metrics["lr"])
        return metrics


@cache
def _testloader():  # noqa: ANN202
    return load_centralized_testset()


def evaluate_fn(server_round: int, parameters) -> dict:  # noqa: ANN001
    """Evaluate the global model on the held-out digits (round 0: the initial model)."""
    net = Net()
    set_weights(net, parameters)
    loss, accuracy = test(net, _testloader())
    per_class = _per_class_accuracy(net)
    return {"loss": loss, "accuracy": accuracy, "worst_class": str(int(np.argmin(per_class)))}


def _per_class_accuracy(net: Net) -> np.ndarray:
    import torch

    x, y = _testloader().dataset.tensors
    with torch.no_grad():
        pred = net(x).argmax(1)
    return np.array([(pred[y == c] == c).float().mean().item() for c in range(10)])
