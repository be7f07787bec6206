"""A client factory for the live-status tests (``client_fn = "status_clients:paced_client"``).

The client trains round R only once the file FEDLOOM_STATUS_PACE holds a number >= R, so the test
decides when each round may finish (and can look at the status while a round is in flight). Names
``hospital-a``, ``hospital-b``, ... hold partitions 0, 1, ... of the deployment's RunConfig data.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from e2e_clients import Wrapped

from fedloom.core.client import Client
from fedloom.net import load_deployment
from fedloom.simulation import build_simulation


class Paced(Wrapped):
    def fit(self, parameters, config):
        pace, rnd = Path(os.environ["FEDLOOM_STATUS_PACE"]), int(config["round"])
        deadline = time.monotonic() + 120.0
        while int(pace.read_text() or 0) < rnd and time.monotonic() < deadline:
            time.sleep(0.02)
        return super().fit(parameters, config)


def paced_client(name: str) -> Client:
    cfg, _, _ = load_deployment(os.environ["FEDLOOM_E2E_CONFIG"])
    index = ord(name.rsplit("-", 1)[-1]) - ord("a")
    return Paced(build_simulation(cfg, side="client").client_fn(str(index)))
