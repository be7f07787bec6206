"""Client factories for the named-site deployment tests (``client_fn = "site_clients:slow_site"``).

``slow_site`` builds the client exactly as ``fedloom client`` does for that name (its partition of
``[client.partitions]`` or its own ``data``), then sleeps before training: same results, longer
rounds, room to kill a process mid-run. The deployment TOML is read from FEDLOOM_E2E_CONFIG.
"""

from __future__ import annotations

import dataclasses
import os

from e2e_clients import Slow

from fedloom.core.client import Client
from fedloom.net import load_deployment
from fedloom.net.deploy import build_client


def slow_site(name: str) -> Client:
    cfg, _, ccfg = load_deployment(os.environ["FEDLOOM_E2E_CONFIG"])
    return Slow(build_client(cfg, dataclasses.replace(ccfg, client_fn=""), name))
