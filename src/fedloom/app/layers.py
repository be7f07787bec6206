"""The client side of a configured run: one ordered list of layers around the training client.

A layer turns a client factory into another (``ClientFn -> ClientFn``), so a layer can wrap each
client (local DP, SecAgg+, compression, HE) or see the whole population (colluding attackers).
:func:`client_layers` returns the layers a configuration asks for, innermost first:

1. ``local_dp``   each client clips and noises its update (before anything hides it)
2. ``secagg``     SecAgg+ masking of the (noised) update
3. ``attack``     the fixed set of malicious clients replaces its updates
4. ``stragglers`` some tasks stop early or fail
5. ``compression`` the update is coded for the wire (with error feedback)
6. ``he``         the update is CKKS-encrypted

:func:`stack` applies them; a configuration with none of these features gets the training
client's factory back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

from fedloom.app.privacy import clip_norm, resolve_noise
from fedloom.core.client import Client, ClientFn
from fedloom.core.client_state import ClientStateStore
from fedloom.core.types import ClientId

if TYPE_CHECKING:
    from fedloom.app.config import RunConfig
    from fedloom.core.codec import Codec

__all__ = ["ClientLayer", "Layer", "client_layers", "stack"]

ClientLayer = Callable[[ClientFn], ClientFn]
"""Turns a client factory into one whose clients do more (or behave differently)."""


@dataclass(frozen=True)
class Layer:
    """A named client layer (the name shows in logs and in :func:`client_layers`' result)."""

    name: str
    apply: ClientLayer


def stack(client_fn: ClientFn, layers: Sequence[Layer]) -> ClientFn:
    """``client_fn`` wrapped by every layer, the first innermost."""
    return reduce(lambda fn, layer: layer.apply(fn), layers, client_fn)


def _per_client(wrap: Callable[[Client, ClientId], Client]) -> ClientLayer:
    def layer(inner: ClientFn) -> ClientFn:
        def client_fn(cid: ClientId) -> Client:
            return wrap(inner(cid), cid)

        return client_fn

    return layer


def client_layers(
    cfg: RunConfig,
    *,
    num_clients: int,
    states: ClientStateStore,
    codec: Codec | None = None,
    he_context: Any = None,
) -> list[Layer]:
    """The layers ``cfg`` configures, innermost first (empty when the run uses none).

    Args:
        cfg: The run configuration.
        num_clients: Size of the population (attackers are chosen among them).
        states: Per-client state store (SecAgg+ keys, compression residuals).
        codec: The update codec, when the run compresses updates (see :mod:`fedloom.app.build`).
        he_context: The secret CKKS context, when the run encrypts updates.
    """
    layers: list[Layer] = []
    privacy = cfg.privacy
    if privacy.dp == "local":
        from fedloom.privacy.dp import LocalDPClient

        clip, noise = clip_norm(cfg), resolve_noise(cfg)
        reproducible = privacy.dp_insecure_reproducible_noise
        layers.append(Layer("local_dp", _per_client(
            lambda c, cid: LocalDPClient(c, clip=clip, noise_multiplier=noise, reproducible_noise=reproducible))))
    if privacy.secagg:
        from fedloom.privacy.secagg import SecAggClient

        rounding = privacy.dp_insecure_reproducible_noise
        layers.append(Layer("secagg", _per_client(
            lambda c, cid: SecAggClient(c, state=states.get(cid), reproducible_rounding=rounding))))
    scen = cfg.scenarios
    if scen.attack != "none" and scen.attackers > 0:
        layers.append(Layer("attack", _attack_layer(cfg, num_clients)))
    if scen.stragglers > 0:
        from fedloom.scenarios import StragglerClient

        fraction, mode, epochs = scen.stragglers, scen.straggler_mode, cfg.training.local_epochs
        layers.append(Layer("stragglers", _per_client(
            lambda c, cid: StragglerClient(c, fraction=fraction, mode=mode, local_epochs=epochs))))
    if codec is not None:
        from fedloom.compression import CompressedClient

        feedback = cfg.communication.error_feedback
        layers.append(Layer("compression", _per_client(
            lambda c, cid: CompressedClient(c, codec=codec, error_feedback=feedback, state=states.get(cid)))))
    if he_context is not None:
        from fedloom.privacy.he import HEClient
        from fedloom.privacy.he.context import key_id

        fingerprint = key_id(he_context)
        layers.append(Layer("he", _per_client(
            lambda c, cid: HEClient(c, context=he_context, key_fingerprint=fingerprint))))
    return layers


def _attack_layer(cfg: RunConfig, num_clients: int) -> ClientLayer:
    """Attackers are fixed for the run (chosen from the seed); ALIE's attackers collude, so the layer
    sees the honest factory it wraps."""
    from fedloom.engine.loop import task_seed
    from fedloom.scenarios import AlieCollusion, MaliciousClient, alie_z, choose_attackers

    scen, seed = cfg.scenarios, cfg.run.seed
    attackers = set(choose_attackers(num_clients, scen.attackers, seed=seed))

    def layer(honest: ClientFn) -> ClientFn:
        collusion = None
        if scen.attack == "alie":
            collusion = AlieCollusion(sorted(attackers, key=int), honest, lambda rnd, cid: task_seed(seed, rnd, cid),
                                      alie_z(num_clients, len(attackers)))

        def client_fn(cid: ClientId) -> Client:
            client = honest(cid)
            if cid in attackers:
                client = MaliciousClient(client, attack=scen.attack, scale=scen.attack_scale, collusion=collusion)
            return client

        return client_fn

    return layer
