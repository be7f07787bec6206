"""The client side of SecAgg+: a wrapper that runs the four stages around any :class:`Client`.

``SecAggClient(inner)`` behaves like ``inner`` for ordinary tasks; a task whose config names a
``secagg_stage`` runs that stage (see :mod:`fedloom.privacy.secagg.protocol`). Only the ``mask``
stage trains (``inner.fit``); it uploads the clipped, quantized, masked delta from the global model,
never the model itself.

Randomness: the round secret (from which the keys and the self-mask seed ``b`` are derived) comes
from ``os.urandom``; the stochastic rounding of the quantizer draws from a generator seeded by the
OS CSPRNG for each task, never from the task seed the server chose (``reproducible_rounding=True``
restores the task seed, for ``--dp-insecure-reproducible-noise`` only).

State: one fresh 32-byte round secret and the stage reached, kept in ``state["secagg"]``. A
deployed client is one long-lived process and keeps the dict in memory; a simulated client is
rebuilt from its factory for every task, so the factory passes the client's entry of a
:class:`~fedloom.core.client_state.ClientStateStore` and the secret survives between stages.
Everything else (keys, ``b``) is re-derived from that secret, and the shares a client holds for its
neighbours come back to it, still sealed, in the ``unmask`` message.

Example:
    >>> from fedloom.core.client_state import ClientStateStore
    >>> store = ClientStateStore()
    >>> client_fn = lambda cid: SecAggClient(make_client(cid), state=store.get(cid))  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from fedloom.core.client import Client, ClientWrapper
from fedloom.core.client_state import ClientState
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns, FitRes
from fedloom.errors import ValidationError
from fedloom.privacy.noise import SYSTEM, SeededRandom
from fedloom.privacy.secagg import crypto, protocol, shamir
from fedloom.privacy.secagg.protocol import ADVERTISE, MASK, SHARE, STAGES, payload, read_payload
from fedloom.privacy.secagg.quantize import Quantizer, clip_l2

__all__ = ["SecAggClient", "masked_update"]

_STATE_KEY = "secagg"


class SecAggClient(ClientWrapper):
    """Take part in SecAgg+ rounds with ``inner``'s training; plain tasks go straight to ``inner``.

    Args:
        inner: The client that trains (e.g. a :class:`~fedloom.TorchClient`).
        state: Where the round secret lives between stages (see the module docstring).
        reproducible_rounding: Seed the stochastic rounding from the task seed (reproducible,
            NOT private: the server chose that seed).
    """

    def __init__(self, inner: Client, *, state: ClientState | None = None, reproducible_rounding: bool = False) -> None:
        self.inner = inner
        self.state: ClientState = state if state is not None else {}
        self.reproducible_rounding = reproducible_rounding

    def fit_task(self, ins: FitIns) -> FitRes:
        """Run the stage ``config["secagg_stage"]`` names, or ordinary training if none."""
        stage = ins.config.get(protocol.STAGE_KEY)
        if stage is None:
            return self.inner.fit_task(ins)
        if stage not in STAGES:
            raise ValidationError(f"unknown secagg stage {stage!r}")
        rnd = int(ins.config["round"])
        if stage == ADVERTISE:
            return self._advertise(rnd)
        keys = self._keys(rnd, STAGES.index(stage))
        me = int(ins.config["secagg_index"])
        if stage == SHARE:
            return self._share(ins, keys, rnd, me)
        if stage == MASK:
            return self._mask(ins, keys, rnd, me)
        return self._unmask(ins, keys, rnd, me)

    # -- state ------------------------------------------------------------------------------
    def _advertise(self, rnd: int) -> FitRes:
        secret = os.urandom(crypto.KEY_BYTES)
        self._save(secret, rnd, 0)
        keys = protocol.RoundKeys(secret)
        pk_c = np.frombuffer(crypto.public_bytes(keys.c), np.uint8)
        pk_s = np.frombuffer(crypto.public_bytes(keys.s), np.uint8)
        return FitRes(Parameters(), 0, {}, payload(pk_c=pk_c, pk_s=pk_s))

    def _save(self, secret: bytes, rnd: int, stage: int) -> None:
        self.state[_STATE_KEY] = Parameters(
            {"secret": np.frombuffer(secret, np.uint8).copy(), "round": np.array([rnd, stage], np.int64)}
        )

    def _keys(self, rnd: int, stage: int) -> protocol.RoundKeys:
        entry = self.state.get(_STATE_KEY)
        if entry is None or int(entry["round"][0]) != rnd:
            raise ValidationError(f"secagg stage {STAGES[stage]!r} without a key advertisement in round {rnd}")
        reached = int(entry["round"][1])
        if stage != reached + 1:
            # Masking twice or unmasking twice in one round would reveal the update.
            raise ValidationError(f"secagg stage {STAGES[stage]!r} out of order (last stage: {STAGES[reached]!r})")
        secret = entry["secret"].tobytes()
        self._save(secret, rnd, stage)
        return protocol.RoundKeys(secret)

    # -- stages -----------------------------------------------------------------------------
    def _share(self, ins: FitIns, keys: protocol.RoundKeys, rnd: int, me: int) -> FitRes:
        peers, pk_c, _ = read_payload(ins.extras, "peers", "pk_c", "pk_s")
        threshold = int(ins.config["secagg_threshold"])
        if threshold < 2 and len(peers) > 1:  # a share of a threshold-1 sharing IS the secret
            raise ValidationError(f"refusing to share with threshold {threshold}: any one neighbour could unmask me")
        xs = peers.astype(np.int64) + 1
        shares_b = shamir.split(keys.b, xs, threshold)
        shares_s = shamir.split(keys.s_bytes, xs, threshold)
        sealed = []
        for row, peer in enumerate(peers):
            key = protocol.share_key(keys.c, pk_c[row].tobytes(), rnd)
            sealed.append(np.frombuffer(protocol.seal_shares(
                key, rnd, me, int(peer),
                shares_b[row].astype("<u4").tobytes(), shares_s[row].astype("<u4").tobytes()), np.uint8))
        return FitRes(Parameters(), 0, {}, payload(to=peers.astype(np.int64), ct=np.stack(sealed)))

    def _mask(self, ins: FitIns, keys: protocol.RoundKeys, rnd: int, me: int) -> FitRes:
        peers, pk_s = read_payload(ins.extras, "peers", "pk_s")
        config = {k: v for k, v in ins.config.items() if not k.startswith("secagg_")}
        extras = {k: v for k, v in ins.extras.items() if k != protocol.EXTRA}
        res = self.inner.fit_task(FitIns(ins.parameters, config, extras))
        quantizer = Quantizer(
            int(ins.config["secagg_bits"]), int(ins.config["secagg_clients"]), float(ins.config["secagg_bound"])
        )
        masked = masked_update(
            res.parameters.flatten() - ins.parameters.flatten(),
            num_examples=res.num_examples,
            clip=float(ins.config["secagg_clip"]),
            weight_cap=float(ins.config["secagg_weight_cap"]),
            quantizer=quantizer,
            rng=self._rounding_rng(ins),
        )
        masked = quantizer.add(masked, crypto.prg_mask(keys.b, masked.size, quantizer.bits))
        for row, peer in enumerate(peers):
            seed = protocol.pairwise_seed(keys.s, pk_s[row].tobytes(), rnd)
            mask = crypto.prg_mask(seed, masked.size, quantizer.bits)
            masked = quantizer.add(masked, mask) if me < int(peer) else quantizer.sub(masked, mask)
        return FitRes(Parameters(), res.num_examples, dict(res.metrics), payload(masked=masked))

    def _rounding_rng(self, ins: FitIns) -> np.random.Generator:
        if self.reproducible_rounding:
            return SeededRandom.from_seed(int(ins.config.get("seed", 0))).generator()  # insecure-reproducible: opt-in
        return SYSTEM.generator()

    def _unmask(self, ins: FitIns, keys: protocol.RoundKeys, rnd: int, me: int) -> FitRes:
        peers, pk_c, sealed, alive = read_payload(ins.extras, "peers", "pk_c", "ct", "alive")
        threshold = int(ins.config["secagg_threshold"])
        if int(np.count_nonzero(alive)) + 1 < threshold:
            raise ValidationError(
                f"refusing to unmask: only {int(np.count_nonzero(alive))} neighbours survived, threshold {threshold}"
            )
        out = np.zeros((len(peers), protocol.SHARE_WORDS), dtype=np.int64)
        for row, peer in enumerate(peers):
            key = protocol.share_key(keys.c, pk_c[row].tobytes(), rnd)
            share_b, share_s = protocol.open_shares(key, sealed[row].tobytes(), rnd, int(peer), me)
            # Reveal b for a peer whose masked input arrived, sk_s for one that dropped; never both.
            out[row] = share_b if bool(alive[row]) else share_s
        return FitRes(Parameters(), 0, {}, payload(of=peers.astype(np.int64), shares=out))


def masked_update(
    delta: np.ndarray,
    *,
    num_examples: int,
    clip: float,
    weight_cap: float,
    quantizer: Quantizer,
    rng: np.random.Generator,
) -> np.ndarray:
    """Encode ``[w * clip(delta), w, unclipped]`` into the ring (before masking).

    ``w = min(num_examples, weight_cap) / weight_cap`` (``1`` when ``weight_cap <= 0``, i.e.
    unweighted); ``unclipped`` is 1 when ``delta`` was within the clip norm (the count adaptive
    clipping needs, summed securely like everything else).
    """
    clipped, within = clip_l2(np.asarray(delta, dtype=np.float64), clip)
    weight = min(float(num_examples), weight_cap) / weight_cap if weight_cap > 0 else 1.0
    vector = np.concatenate([weight * clipped, [weight, 1.0 if within else 0.0]])
    return quantizer.encode(vector, rng)
