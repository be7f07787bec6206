"""What an attacker observes of one round under each protection, produced by fedloom's own mechanisms.

The auditor runs the real parts from outside (:class:`~fedloom.TorchClient` training,
:class:`~fedloom.privacy.secagg.SecAggPool`, :class:`~fedloom.privacy.dp.CentralDP`,
:class:`~fedloom.privacy.dp.LocalDPClient`, Opacus DP-SGD, the ``topk``/``q4`` codecs) on a round
of FedSGD: every client takes ONE full-batch SGD step on its examples, the classic setting of
gradient inversion. The observation is a flat vector the attack treats as "one client's update":

* ``none``: the target client's update, as a server without SecAgg sees it.
* ``secagg``: the SecAgg+ sum over the cohort (all the server learns).
* ``central_dp``: what leaves the server: the noised mean of the cohort's clipped updates (the
  server itself sees raw updates under central DP without SecAgg, i.e. ``none``).
* ``local_dp``: the target's clipped, noised update.
* ``dp_sgd``: the target's update trained with Opacus DP-SGD (per-example clipping and noise).
* ``topk`` / ``q4``: the target's update after the codec (top 1% entries; 4-bit stochastic).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["PROTECTIONS", "Observation", "observe"]

PROTECTIONS = ("none", "secagg", "central_dp", "local_dp", "dp_sgd", "topk", "q4")
"""The protections an inversion attack is run against."""


@dataclass
class Observation:
    """What the attacker sees: ``update`` (flat, the model's parameter order) and how it arose."""

    update: np.ndarray
    protection: str
    clients: int


def _client(model_fn: Callable[[], nn.Module], data: tuple[np.ndarray, np.ndarray], lr: float,
            dp_sgd: tuple[float, float] | None = None) -> Client:
    from fedloom.torch.client import TorchClient

    settings = None
    if dp_sgd is not None:
        from fedloom.privacy.opacus import DPSGD

        settings = DPSGD(noise_multiplier=dp_sgd[0], max_grad_norm=dp_sgd[1])
    x, y = data
    return TorchClient(model_fn=model_fn, train_data=(x, y), lr=lr, batch_size=len(x), local_epochs=1,
                       dp_sgd=settings)


def observe(
    protection: str,
    *,
    model_fn: Callable[[], nn.Module],
    parameters: Parameters,
    cohort: Sequence[tuple[np.ndarray, np.ndarray]],
    lr: float = 0.1,
    noise_multiplier: float = 1.0,
    clip: float = 1.0,
    topk_fraction: float = 0.01,
    seed: int = 0,
) -> Observation:
    """One FedSGD round of ``cohort`` (client 0 is the target) at ``parameters``, seen under ``protection``.

    Args:
        protection: One of :data:`PROTECTIONS`.
        model_fn: Builds the model (the run's architecture).
        parameters: The global model the server sent.
        cohort: Each client's ``(x, y)``; client 0 is the attacked one.
        lr: The clients' learning rate (one full-batch step each).
        noise_multiplier: ``z`` of central DP, local DP and DP-SGD.
        clip: Clip norm of central/local DP (per update) and DP-SGD (per example).
        topk_fraction: Share of entries ``topk`` keeps.
        seed: Task seed (training, codec rounding); the DP noise comes from the OS CSPRNG as in a run.
    """
    if protection not in PROTECTIONS:
        raise ConfigError(f"unknown protection {protection!r}; choose one of: {', '.join(PROTECTIONS)}")
    if not cohort:
        raise ConfigError("the cohort is empty: give at least the target client's examples")
    base = parameters.flatten()
    ins = FitIns(parameters, {"round": 1, "seed": seed})
    if protection in ("none", "topk", "q4", "local_dp", "dp_sgd"):
        dp_sgd = (noise_multiplier, clip) if protection == "dp_sgd" else None
        client = _client(model_fn, cohort[0], lr, dp_sgd)
        if protection == "local_dp":
            from fedloom.privacy.dp import LocalDPClient

            client = LocalDPClient(client, clip=clip, noise_multiplier=noise_multiplier)
        res = client.fit_task(ins)
        update = res.parameters.flatten() - base
        if protection in ("topk", "q4"):
            from fedloom.compression.registry import CODECS

            codec = CODECS.get(protection)(topk_fraction=topk_fraction)
            assert codec is not None  # "none" is the only codec name that builds nothing
            rng = np.random.default_rng(seed)
            payload = codec.encode(parameters.unflatten(update), rng=rng)
            update = codec.decode(payload, parameters.spec()).flatten()
        return Observation(update, protection, 1)
    clients = [_client(model_fn, data, lr) for data in cohort]
    if protection == "secagg":
        from fedloom.backends.inline import InlinePool
        from fedloom.core.client_state import ClientStateStore
        from fedloom.privacy.secagg import SecAggClient, SecAggPool
        from fedloom.privacy.secagg.server import SECAGG_SUM

        store = ClientStateStore()
        pool = SecAggPool(InlinePool(lambda cid: SecAggClient(clients[int(cid)], state=store.get(cid)),
                                     len(clients)), weight_cap=0.0, clip=1e6, seed=seed)
        tasks = [(str(i), FitIns(parameters, {"round": 1, "seed": seed + i})) for i in range(len(clients))]
        out = pool.fit(tasks, expected=parameters.spec())
        if not out.results:
            raise ConfigError(f"the SecAgg round failed: {out.failures}")
        return Observation(np.asarray(out.results[0][1].extras[SECAGG_SUM]["sum"], np.float64), protection,
                           len(clients))
    from fedloom.privacy.dp import CentralDP
    from fedloom.strategies.fedavg import FedAvg

    strategy = CentralDP(FedAvg(fraction_fit=1.0), noise_multiplier=noise_multiplier, clip=clip)
    state = strategy.initialize(parameters, seed=seed)
    ids = [str(i) for i in range(len(clients))]
    tasks_dp = strategy.configure_fit(state, 1, ids)
    results = [(cid, clients[int(cid)].fit_task(task)) for cid, task in tasks_dp]
    strategy.aggregate_fit(state, 1, results, [])
    return Observation(state.parameters.flatten() - base, protection, len(clients))
