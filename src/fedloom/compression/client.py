"""The client side of compression: send a coded update, keep the coding error for next time.

Error feedback: Sai Praneeth Karimireddy, Quentin Rebjock, Sebastian U. Stich, Martin Jaggi,
"Error Feedback Fixes SignSGD and other Gradient Compression Schemes", ICML 2019,
arXiv:1901.09847 (and Stich et al., "Sparsified SGD with Memory", arXiv:1809.07599).

:class:`CompressedClient` wraps any :class:`~fedloom.core.client.Client`. After the inner client
trains, it computes the update ``u = w_local - w_received``, adds the residual ``e`` it kept from
its last round, sends ``C(u + e)`` and keeps ``e <- u + e - decode(C(u + e))``. The residual lives
in the client's persistent ``state`` (in simulation, its entry of the ``ClientStateStore``), so
it survives across rounds even though simulated clients are rebuilt for every task.

A broadcast that arrives in float16 (``--compress-broadcast``) is widened to float32 before the
inner client sees it, and the update is taken against what was received.

Example:
    >>> from fedloom.compression import TopK
    >>> client = CompressedClient(inner_client, codec=TopK(fraction=0.01))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedloom.compression.base import Codec
from fedloom.core.client import Client, ClientWrapper
from fedloom.core.client_state import ClientState
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes

__all__ = ["CompressedClient", "RESIDUAL_KEY", "widen_float16"]

RESIDUAL_KEY = "compression.residual"
"""Name of the error-feedback residual in the client's state."""


def widen_float16(parameters: Parameters) -> Parameters:
    """Cast float16 arrays (a compressed broadcast) to float32; others unchanged."""
    if not any(a.dtype == np.float16 for a in parameters.values()):
        return parameters
    return Parameters({k: a.astype(np.float32) if a.dtype == np.float16 else a for k, a in parameters.items()})


class CompressedClient(ClientWrapper):
    """Wrap ``inner`` so that its fit result travels as a compressed update.

    Args:
        inner: The client that trains (e.g. a :class:`~fedloom.TorchClient`).
        codec: How the update is coded (:class:`~fedloom.compression.TopK`, ...).
        error_feedback: Keep the coding error and add it to the next update.
        state: Persistent per-client state for the residual (a deployed client may omit it:
            the wrapper then keeps its own dict for as long as it lives).
    """

    def __init__(
        self, inner: Client, *, codec: Codec, error_feedback: bool = True, state: ClientState | None = None
    ) -> None:
        self.inner = inner
        self.codec = codec
        self.error_feedback = error_feedback
        self.state: ClientState = state if state is not None else {}

    def fit_task(self, ins: FitIns) -> FitRes:
        received = widen_float16(ins.parameters)
        config = ins.config
        res = self.inner.fit_task(dataclasses.replace(ins, parameters=received))  # extras pass through
        update = Parameters(
            {k: v.astype(np.float64) - received[k].astype(np.float64) for k, v in res.parameters.items()}
        )
        residual = self.state.get(RESIDUAL_KEY)
        if self.error_feedback and residual is not None and _same_shapes(residual, update):
            update = Parameters({k: v + residual[k] for k, v in update.items()})
        seed = int(config.get("seed", 0))
        payload = self.codec.encode(update, rng=np.random.default_rng([seed, 0xC0DEC]))
        if self.error_feedback:
            restored = self.codec.decode(payload, update.spec())
            self.state[RESIDUAL_KEY] = Parameters(
                {k: (v - restored[k]).astype(np.float32) for k, v in update.items()}
            )
        return FitRes(payload, res.num_examples, dict(res.metrics), dict(res.extras))

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return self.inner.evaluate(widen_float16(parameters), config)


def _same_shapes(a: Parameters, b: Parameters) -> bool:
    return list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
