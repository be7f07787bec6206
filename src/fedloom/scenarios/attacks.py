"""Simulated malicious (Byzantine) clients: sign flip, Gaussian noise, label flip, "a little is enough".

A fixed set of attackers (chosen once per run from the seed) replaces the update an honest client
would send. Update = client parameters minus the global parameters it received.

* ``sign_flip``: send ``-scale * u`` where ``u`` is the honest update (scaled sign flipping).
* ``gaussian``: send pure noise ``N(0, scale^2)`` per coordinate.
* ``scale``: send ``scale * u``, the honest update boosted (the model-replacement boosting of
  Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020, arXiv:1807.00459, without
  the backdoor; the adversarial benchmark uses ``scale = 1000``).
* ``huge_weight``: send the flipped honest update ``-u`` and claim :data:`HUGE_NUM_EXAMPLES`
  (10^15) training examples: the example-weighted mean's weight, not the update's size, is the lever.
* ``label_flip``: train honestly on flipped labels ``y -> C - 1 - y`` (a data-poisoning attack;
  needs a :class:`~fedloom.torch.TorchClient` for a classification task, possibly inside other
  wrappers such as local DP). It is a trainer, :class:`LabelFlipTrainer`, wrapped around the
  TorchClient's own trainer when the :class:`MaliciousClient` is built.
* ``alie``: "A Little Is Enough" (Gilad Baruch, Moran Baruch, Yoav Goldberg, "A Little Is Enough:
  Circumventing Defenses For Distributed Learning", NeurIPS 2019, arXiv:1902.06156). The attackers
  collude: they compute the per-coordinate mean ``mu`` and standard deviation ``sigma`` of their
  own honest updates and all send ``mu - z sigma`` with ``z = Phi^-1((n - s) / n)``,
  ``s = floor(n / 2 + 1) - m`` for ``n`` clients of which ``m`` are attackers: small enough to
  pass for honest, consistent enough to shift medians and Krum.

Example:
    >>> choose_attackers(10, 0.2, seed=0)
    ['0', '7']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import torch

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.trainer import TRAINERS, LocalTrainer, TrainContext, TrainOutcome
from fedloom.core.types import ClientId, FitIns, FitRes
from fedloom.errors import ConfigError
from fedloom.scenarios.base import ClientWrapper
from fedloom.scenarios.registry import ATTACKS

__all__ = ["ATTACKS", "AlieCollusion", "HUGE_NUM_EXAMPLES", "LabelFlipTrainer", "MaliciousClient", "alie_z",
           "choose_attackers"]

HUGE_NUM_EXAMPLES = 10**15
"""The example count a ``huge_weight`` attacker claims."""



def choose_attackers(num_clients: int, fraction: float, *, seed: int) -> list[ClientId]:
    """The attacker ids: ``round(fraction * n)`` clients (at least one if ``fraction > 0``), by seed."""
    if fraction <= 0:
        return []
    k = max(1, int(round(fraction * num_clients)))
    chosen = np.random.default_rng([0xA77A, seed]).permutation(num_clients)[:k]
    return [str(i) for i in sorted(chosen.tolist())]


def alie_z(num_clients: int, num_attackers: int) -> float:
    """Baruch et al.'s ``z_max`` for ``n`` clients and ``m`` attackers."""
    s = math.floor(num_clients / 2 + 1) - num_attackers
    p = (num_clients - s) / num_clients
    p = min(max(p, 1e-6), 1 - 1e-6)
    return NormalDist().inv_cdf(p)


def _replace_update(res: FitRes, global_params: Parameters, update: np.ndarray) -> FitRes:
    params = global_params.unflatten(global_params.flatten() + update)
    return dataclasses.replace(res, parameters=params)


class AlieCollusion:
    """What the ALIE attackers share: their honest updates of the current task, combined once.

    Args:
        attackers: The attacker ids.
        honest_client_fn: Builds the honest version of a client (to compute its honest update).
        task_seed_fn: ``(rnd, cid) -> seed`` of a client task (:func:`fedloom.engine.task_seed`).
        z: The shift in standard deviations.
    """

    def __init__(
        self,
        attackers: list[ClientId],
        honest_client_fn: Callable[[ClientId], Client],
        task_seed_fn: Callable[[int, ClientId], int],
        z: float,
    ) -> None:
        self.attackers = attackers
        self.honest_client_fn = honest_client_fn
        self.task_seed_fn = task_seed_fn
        self.z = z
        self._key: tuple[int, bytes] | None = None
        self._value: np.ndarray | None = None

    def malicious_update(self, ins: FitIns) -> np.ndarray:
        """``mu - z sigma`` over the attackers' honest updates for this task's global model."""
        rnd = int(ins.config.get("round", 0))
        global_vec = ins.parameters.flatten()
        key = (rnd, global_vec[: min(64, global_vec.size)].tobytes())
        if self._key != key or self._value is None:
            updates = []
            for cid in self.attackers:
                config = {**ins.config, "seed": self.task_seed_fn(rnd, cid)}
                res = self.honest_client_fn(cid).fit_task(dataclasses.replace(ins, config=config))
                updates.append(res.parameters.flatten() - global_vec)
            stacked = np.stack(updates)
            self._value = stacked.mean(axis=0) - self.z * stacked.std(axis=0)
            self._key = key
        return self._value


@TRAINERS.register("label_flip")
class LabelFlipTrainer:
    """The label-flip attack: train with another trainer on flipped labels y -> C-1-y.

    ``C`` is the model's output width (classes). The inner trainer (default: TorchClient's
    ``auto`` trainer) runs unchanged on a context whose loss flips the targets, so the attack
    composes with FedProx, SCAFFOLD and DP-SGD trainers. Classification only.

    Args:
        inner: The honest trainer whose training is poisoned.
    """

    vectorizable: bool = False

    def __init__(self, inner: LocalTrainer | None = None) -> None:
        if inner is None:
            from fedloom.torch.auto import AutoTrainer

            inner = AutoTrainer()
        self.inner = inner

    def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome:
        if ctx.task != "classification":
            raise ConfigError(f"the label_flip attack needs a classification task, not {ctx.task!r}")
        honest_loss = ctx.loss_fn

        def flipped(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return honest_loss(output, output.shape[1] - 1 - target)

        return self.inner.train(dataclasses.replace(ctx, loss_fn=flipped), ins)

    def __repr__(self) -> str:
        return f"LabelFlipTrainer({self.inner!r})"


def innermost_client(client: Client) -> Client:
    """The client at the bottom of a chain of wrappers (each with a public ``inner`` client)."""
    seen = {id(client)}
    while isinstance(getattr(client, "inner", None), Client):
        client = client.inner  # type: ignore[attr-defined]
        if id(client) in seen:
            break
        seen.add(id(client))
    return client


def _poison_labels(client: Client) -> None:
    """Make the TorchClient inside ``client`` train on flipped labels (:class:`LabelFlipTrainer`)."""
    from fedloom.torch.client import TorchClient

    target = innermost_client(client)
    if not isinstance(target, TorchClient):
        found = type(target).__name__ if target is client else f"{type(target).__name__} inside {type(client).__name__}"
        raise ConfigError(f"the label_flip attack needs a TorchClient (its labels are flipped in local training), "
                          f"found {found}")
    if target.task != "classification":
        raise ConfigError(f"the label_flip attack needs a classification task; the TorchClient's task is "
                          f"{target.task!r}")
    if not isinstance(target.trainer, LabelFlipTrainer):  # one wrapper flips; a second would flip back
        target.trainer = LabelFlipTrainer(target.trainer)


class MaliciousClient(ClientWrapper):
    """Replace ``inner``'s update according to ``attack`` (one of :data:`ATTACKS`).

    ``label_flip`` is set up once, here: the :class:`~fedloom.torch.TorchClient` at the bottom of
    ``inner``'s wrappers (followed through their ``inner``) gets its trainer wrapped in a
    :class:`LabelFlipTrainer`, so the attacker's data is poisoned whatever wraps the client.

    Args:
        inner: The honest client.
        attack: The attack name.
        scale: ``sign_flip`` / ``scale`` multiplier, ``gaussian`` standard deviation.
        collusion: Shared state of the ALIE attackers (required for ``alie``).
    """

    def __init__(
        self, inner: Client, *, attack: str, scale: float = 4.0, collusion: AlieCollusion | None = None
    ) -> None:
        super().__init__(inner)
        if attack not in ATTACKS or attack == "none":
            raise ConfigError(f"unknown attack {attack!r}; choose one of {ATTACKS.names()[1:]}")
        if attack == "alie" and collusion is None:
            raise ConfigError("the alie attack needs an AlieCollusion shared by the attackers")
        if attack == "label_flip":
            _poison_labels(inner)
        self.attack = attack
        self.scale = scale
        self.collusion = collusion

    def fit_task(self, ins: FitIns) -> FitRes:
        res = self.inner.fit_task(ins)
        if self.attack == "label_flip":  # the inner TorchClient trained on flipped labels
            res.metrics["malicious"] = 1
            return res
        global_vec = ins.parameters.flatten()
        if self.attack == "sign_flip":
            update = -self.scale * (res.parameters.flatten() - global_vec)
        elif self.attack == "scale":
            update = self.scale * (res.parameters.flatten() - global_vec)
        elif self.attack == "huge_weight":
            update = -(res.parameters.flatten() - global_vec)
            res = dataclasses.replace(res, num_examples=HUGE_NUM_EXAMPLES)
        elif self.attack == "gaussian":
            rng = np.random.default_rng([0x6A55, int(ins.config.get("seed", 0))])
            update = rng.normal(0.0, self.scale, global_vec.shape)
        else:
            assert self.collusion is not None
            update = self.collusion.malicious_update(ins)
        res = _replace_update(res, ins.parameters, update)
        res.metrics["malicious"] = 1
        return res
