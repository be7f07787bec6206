"""Issue 10, finding 2, over gRPC: a deployed client sending 3e38 and claiming 10**15 examples.

``fedloom server`` retries a failed round from its last checkpoint. Before the fix FedAvgM's model
became inf, then NaN, and was checkpointed: every retry started from the NaN model, every honest
update was then rejected, and the server gave up. Now the round's damage is bounded by the caps, and
with the caps off the round fails before anything is checkpointed, so the retry continues from the
last good model.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from fedloom import RunConfig
from fedloom.app.build import build_simulation
from fedloom.core import Client, FitRes, Parameters
from fedloom.engine import load_checkpoint
from fedloom.net import ClientRuntime
from fedloom.net.config import ServerConfig
from fedloom.net.deploy import run_server

pytestmark = pytest.mark.slow

CLIENTS, ROUNDS = 3, 3


class OnceSeizer(Client):
    """Honest (the experiment's client), except its first task of round 2: 3e38 everywhere, 10**15 examples."""

    def __init__(self, honest: Client) -> None:
        self.honest, self.attacked = honest, False

    def get_parameters(self, config):
        return self.honest.get_parameters(config)

    def fit(self, parameters, config):
        if int(config.get("round", 0)) == 2 and not self.attacked:
            self.attacked = True
            return FitRes(Parameters({k: np.full(v.shape, 3e38, v.dtype) for k, v in parameters.items()}), 10**15)
        return self.honest.fit(parameters, config)

    def evaluate(self, parameters, config):
        return self.honest.evaluate(parameters, config)


def _serve(cfg: RunConfig, out: Path):
    scfg = ServerConfig(address="127.0.0.1:0", checkpoint_dir=str(out), wait_clients_s=60.0, heartbeat_s=0.5,
                        heartbeat_timeout_s=10.0, max_round_retries=2)
    sim = build_simulation(cfg)
    clients = [sim.client_fn(str(i)) for i in range(CLIENTS)]
    attacker = OnceSeizer(clients[-1])
    clients[-1] = attacker
    port: list[int] = []
    ready = threading.Event()
    outcome: dict = {}

    def server() -> None:
        try:
            outcome["result"] = run_server(cfg, scfg, insecure=True,
                                           on_listen=lambda p: (port.append(p), ready.set()))
        except BaseException as exc:  # surfaced below
            outcome["error"] = exc
            ready.set()

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    assert ready.wait(60) and port, outcome.get("error")
    runtimes = [ClientRuntime(c, server=f"127.0.0.1:{port[0]}", name=str(i), heartbeat_s=0.5, server_timeout_s=10.0,
                              backoff_initial_s=0.05, backoff_max_s=0.2) for i, c in enumerate(clients)]
    workers = [threading.Thread(target=rt.run, daemon=True) for rt in runtimes]
    for w in workers:
        w.start()
    thread.join(120)
    for rt in runtimes:
        rt.stop()
    assert not thread.is_alive(), "the server did not finish"
    return outcome, attacker


@pytest.mark.parametrize("caps", ["default caps", "caps off"])
def test_deployed_fedavgm_survives_a_3e38_client_and_the_retry_resumes_from_a_finite_checkpoint(
    caps: str, tmp_path: Path
) -> None:
    extra = {} if caps == "default caps" else {"max_weight_ratio": 0.0, "max_norm_ratio": 0.0}
    cfg = RunConfig(dataset="iris", model="linear", clients=CLIENTS, rounds=ROUNDS, partition="iid",
                    strategy="fedavgm", client_test_fraction=0.0, progress=False, **extra)
    outcome, attacker = _serve(cfg, tmp_path)
    assert "error" not in outcome, outcome.get("error")
    assert attacker.attacked
    result = outcome["result"]
    assert [h.round for h in result.history] == [1, 2, 3]
    for name, arr in result.parameters.items():
        assert np.isfinite(arr).all(), name
    stored, _ = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert stored.round == ROUNDS and all(np.isfinite(a).all() for a in stored.parameters.values())
    # the retried round 2 aggregated all three (honest) results; with the caps the attack was absorbed
    assert result.history[1].metrics["fit_clients"] == CLIENTS
    assert result.history[-1].metrics["accuracy"] > 0.6
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "history.json").exists()
