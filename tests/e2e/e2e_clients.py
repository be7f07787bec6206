"""Client factories for the multi-process deployment tests (``client_fn = "e2e_clients:..."``).

They wrap the RunConfig client named by the process (so training results are those of the normal
client) and add a delay or a misbehaviour. The deployment TOML is read from FEDLOOM_E2E_CONFIG.
"""

from __future__ import annotations

import os
import time

import numpy as np

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitRes
from fedloom.net import load_deployment
from fedloom.simulation import build_simulation


def _base(name: str) -> Client:
    cfg, _, _ = load_deployment(os.environ["FEDLOOM_E2E_CONFIG"])
    return build_simulation(cfg).client_fn(name)


class Wrapped(Client):
    def __init__(self, inner: Client) -> None:
        self.inner = inner

    def get_parameters(self, config):
        return self.inner.get_parameters(config)

    def fit(self, parameters, config):
        return self.inner.fit(parameters, config)

    def evaluate(self, parameters, config):
        return self.inner.evaluate(parameters, config)


class Slow(Wrapped):
    """Sleeps before training (same results, longer rounds: room to kill something mid-round)."""

    def fit(self, parameters, config):
        time.sleep(float(os.environ.get("FEDLOOM_E2E_SLOW_S", "1.0")))
        return super().fit(parameters, config)


def slow_client(name: str) -> Client:
    return Slow(_base(name))


class Paced(Wrapped):
    """Takes at least FEDLOOM_E2E_PACE_S per task, so tests that compare clients' speeds do not depend on how
    fast this machine trains a small model."""

    def fit(self, parameters, config):
        time.sleep(float(os.environ.get("FEDLOOM_E2E_PACE_S", "0.1")))
        return super().fit(parameters, config)


def paced_client(name: str) -> Client:
    return Paced(_base(name))


class Bad(Wrapped):
    """Round 1: NaN; 2: wrong shape; 3: wrong names; 4: an oversized message; 5: +inf."""

    def fit(self, parameters, config):
        res = super().fit(parameters, config)
        arrays = {k: v.copy() for k, v in res.parameters.items()}
        first = next(iter(arrays))
        rnd = int(config["round"])
        if rnd == 1:
            arrays[first].flat[0] = np.nan
        elif rnd == 2:
            arrays[first] = np.zeros(arrays[first].size + 1, arrays[first].dtype)
        elif rnd == 3:
            arrays["evil"] = arrays.pop(first)
        elif rnd == 4:
            return FitRes(res.parameters, res.num_examples, res.metrics,
                          {"blob": Parameters({"b": np.zeros(400_000, np.uint8)})})
        else:
            arrays[first].flat[0] = np.inf
        return FitRes(Parameters(arrays), res.num_examples, res.metrics)


def bad_client(name: str) -> Client:
    return Bad(_base(name))


def gated_client(name: str) -> Client:
    """The normal client, built only once the file FEDLOOM_E2E_GATE exists: a replacement process
    can pay its start-up cost (imports, data) while the process it replaces is still running."""
    client = _base(name)
    gate = os.environ["FEDLOOM_E2E_GATE"]
    while not os.path.exists(gate):
        time.sleep(0.05)
    return client


class Echo(Client):
    """Returns what it gets (for clients whose training does not matter)."""

    def get_parameters(self, config):
        raise NotImplementedError

    def fit(self, parameters, config):
        return FitRes(parameters, 1)

    def evaluate(self, parameters, config):
        raise NotImplementedError


class DiesAfterShareKeys(Client):
    """Kills its own process (SIGKILL) when the masked-input stage arrives: a SecAgg+ dropout after
    the share-keys stage, the case the unmask stage must recover from."""

    def __init__(self, inner: Client) -> None:
        self.inner = inner

    def get_parameters(self, config):
        return self.inner.get_parameters(config)

    def fit(self, parameters, config):
        return self.inner.fit(parameters, config)

    def fit_task(self, ins):
        if ins.config.get("secagg_stage") == "mask":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.fit_task(ins)

    def evaluate(self, parameters, config):
        return self.inner.evaluate(parameters, config)


def dies_after_share_keys(name: str) -> Client:
    return DiesAfterShareKeys(_base(name))
