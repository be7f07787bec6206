"""Simulated heterogeneity and adversaries: stragglers and malicious clients, as client wrappers.

:func:`wrap_clients` turns an honest client factory into one whose clients straggle and attack as
a :class:`~fedloom.config.RunConfig` asks (``--stragglers``, ``--straggler-mode``, ``--attack``,
``--attackers``, ``--attack-scale``). The wrappers are ordinary :class:`~fedloom.Client` objects,
so they run in every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fedloom.core.client import Client
from fedloom.core.types import ClientId
from fedloom.scenarios.attacks import ATTACKS, AlieCollusion, MaliciousClient, alie_z, choose_attackers
from fedloom.scenarios.base import ClientWrapper
from fedloom.scenarios.stragglers import STRAGGLER_MODES, StragglerClient, StragglerDropped, is_straggler

if TYPE_CHECKING:
    from fedloom.config import RunConfig

__all__ = [
    "ATTACKS",
    "STRAGGLER_MODES",
    "AlieCollusion",
    "ClientWrapper",
    "MaliciousClient",
    "StragglerClient",
    "StragglerDropped",
    "alie_z",
    "choose_attackers",
    "is_straggler",
    "wrap_clients",
]


def wrap_clients(
    client_fn: Callable[[ClientId], Client], cfg: RunConfig, *, num_clients: int
) -> Callable[[ClientId], Client]:
    """``client_fn`` with the stragglers and attackers ``cfg`` configures (itself when none).

    Attackers are fixed for the run (:func:`choose_attackers` with ``cfg.seed``); stragglers are
    drawn per task from its seed. An attacker that straggles is dropped or cut short like others.
    """
    from fedloom.engine import task_seed

    attackers = set(choose_attackers(num_clients, cfg.attackers, seed=cfg.seed)) if cfg.attack != "none" else set()
    if not attackers and cfg.stragglers <= 0:
        return client_fn
    collusion = None
    if cfg.attack == "alie":
        collusion = AlieCollusion(
            sorted(attackers, key=int),
            client_fn,
            lambda rnd, cid: task_seed(cfg.seed, rnd, cid),
            alie_z(num_clients, len(attackers)),
        )

    def wrapped(cid: ClientId) -> Client:
        client = client_fn(cid)
        if cid in attackers:
            client = MaliciousClient(client, attack=cfg.attack, scale=cfg.attack_scale, collusion=collusion)
        if cfg.stragglers > 0:
            client = StragglerClient(
                client, fraction=cfg.stragglers, mode=cfg.straggler_mode, local_epochs=cfg.local_epochs
            )
        return client

    return wrapped
