"""The server side of encrypted aggregation: FedAvg over CKKS ciphertexts, never decrypted.

:class:`HEFedAvg` holds only the *public* CKKS context (no secret key: asserted at construction).
Each round it sums the clients' ciphertexts ``Enc(n_i w_i)`` and keeps the encrypted aggregate and
the public total weight ``sum_i n_i`` in its :class:`~fedloom.core.strategy.ServerState`
(``buffers["he.global"]``, ``values["he.weight"]``), so a checkpoint holds it like any other state;
the next round sends both to the clients, which decrypt. ``state.parameters`` stays empty after
:meth:`HEFedAvg.initialize`: the server never has the model, so central evaluation is impossible and runs
evaluate federatedly (``fraction_evaluate > 0``). The model is the plaintext initial one in round 1
(it is public: a random initialisation).

Only the weighted mean is possible on ciphertexts: robust aggregators (median, Krum, ...) and
server optimizers need the plaintext updates and cannot run here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure, ServerState, Strategy, sample_clients, weighted_mean_metrics
from fedloom.core.types import ClientId, Config, EvaluateIns, EvaluateRes, FitIns, FitRes, Metrics
from fedloom.errors import ConfigError, RoundFailedError
from fedloom.privacy.he.ciphertext import load_chunks, serialize_chunks
from fedloom.privacy.he.client import HE_EXTRA, KEY_ID_KEY, WEIGHT_KEY, WEIGHTED_KEY
from fedloom.privacy.he.context import key_id
from fedloom.strategies.fedavg import FedAvg

__all__ = ["HEFedAvg"]

INITIAL = "he.initial"
GLOBAL = "he.global"
SIZE = "he.size"


class HEFedAvg(Strategy):
    """Federated Averaging of CKKS-encrypted client models.

    It is not a :class:`~fedloom.strategies.FedAvg` (no aggregator, no server optimizer, no central
    evaluation can run on ciphertexts); it takes FedAvg's sampling and fit-config settings by
    composition, from a plain FedAvg built with the same arguments.

    Args:
        context: The *public* TenSEAL context (``public.tenseal``); a context with a secret key is
            refused.
        **kwargs: :class:`~fedloom.strategies.FedAvg` arguments, except ``aggregator`` and
            ``evaluate_fn`` (impossible on ciphertexts).
    """

    def __init__(self, *, context: Any, **kwargs: Any) -> None:
        if context.is_private():
            raise ConfigError("the HE server must hold only the public context: it would be able to decrypt")
        for name in ("aggregator", "evaluate_fn"):
            if kwargs.get(name) is not None:
                raise ConfigError(f"HE aggregation cannot use {name}: the server never sees plaintext updates")
        kwargs.pop("aggregator", None)
        kwargs.pop("evaluate_fn", None)
        self.sampling = FedAvg(**kwargs)  # validates and holds the sampling / fit-config settings
        self.fraction_fit = self.sampling.fraction_fit
        self.min_fit_clients = self.sampling.min_fit_clients
        self.min_fit_results = self.sampling.min_fit_results
        self.fraction_evaluate = self.sampling.fraction_evaluate
        self.min_evaluate_clients = self.sampling.min_evaluate_clients
        self.weighted = self.sampling.weighted
        self.context = context
        self.key_id = key_id(context)

    def initialize(self, parameters: Parameters, *, seed: int = 0) -> ServerState:
        state = super().initialize(Parameters(), seed=seed)
        state.buffers[INITIAL] = parameters.copy()
        state.values[SIZE] = parameters.num_elements
        return state

    def global_payload(self, state: ServerState) -> Parameters:
        """What clients receive: the encrypted aggregate and its weight, or the initial model."""
        if GLOBAL not in state.buffers:
            return state.buffers[INITIAL]
        weight = np.array([float(state.values[WEIGHT_KEY])], dtype=np.float64)
        return Parameters({WEIGHT_KEY: weight, **state.buffers[GLOBAL]})

    def __repr__(self) -> str:
        return f"HEFedAvg(fraction_fit={self.fraction_fit}, weighted={self.weighted})"

    def round_fit_config(self, state: ServerState, rnd: int) -> Config:
        return {**self.sampling.round_fit_config(state, rnd), WEIGHTED_KEY: self.weighted, KEY_ID_KEY: self.key_id}

    def configure_fit(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, FitIns]]:
        chosen = sample_clients(state.rng, clients, self.fraction_fit, self.min_fit_clients)
        config, payload = self.round_fit_config(state, rnd), self.global_payload(state)
        return [(cid, FitIns(payload, dict(config))) for cid in chosen]

    def aggregate_fit(
        self,
        state: ServerState,
        rnd: int,
        results: Sequence[tuple[ClientId, FitRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        size = int(state.values[SIZE])
        total: list[Any] | None = None
        weight, accepted, rejected = 0.0, [], 0
        for _, res in results:
            try:
                chunks = load_chunks(self.context, res.extras[HE_EXTRA], size)
            except Exception:  # a malformed ciphertext drops that client, not the round
                rejected += 1
                continue
            if total is None:
                total = chunks
            else:
                for acc, vec in zip(total, chunks, strict=True):
                    acc.add_(vec)
            weight += float(res.num_examples) if self.weighted else 1.0
            accepted.append(res)
        if total is None or len(accepted) < self.min_fit_results or weight <= 0:
            raise RoundFailedError(
                f"round {rnd}: {len(accepted)} valid encrypted results, {self.min_fit_results} needed "
                f"({len(failures)} failures, {rejected} malformed ciphertexts)"
            )
        state.buffers[GLOBAL] = serialize_chunks(self.context, total, size)
        state.values[WEIGHT_KEY] = weight
        metrics: Metrics = {"fit_clients": len(accepted), "fit_failures": len(failures) + rejected}
        metrics.update(weighted_mean_metrics([(r.num_examples, r.metrics) for r in accepted]))
        return metrics

    def configure_evaluate(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, EvaluateIns]]:
        if self.fraction_evaluate <= 0.0 or not clients:
            return []
        k = min(self.min_evaluate_clients, len(clients))
        chosen = sample_clients(state.rng, clients, self.fraction_evaluate, k)
        payload = self.global_payload(state)
        return [(cid, EvaluateIns(payload, {KEY_ID_KEY: self.key_id})) for cid in chosen]

    def evaluate(self, state: ServerState, rnd: int) -> EvaluateRes | None:
        return None
