"""``simulate``: run your own clients and strategy, no configuration file needed.

Example:
    >>> import numpy as np
    >>> from fedloom import Client, EvaluateRes, FedAvg, FitRes, Parameters
    >>> class Mean(Client):  # each client pulls the model towards its own number
    ...     def __init__(self, x): self.x = x
    ...     def get_parameters(self, config): return Parameters({"w": np.zeros(1)})
    ...     def fit(self, p, config): return FitRes(Parameters({"w": np.array([self.x])}), 1)
    ...     def evaluate(self, p, config): return EvaluateRes(0.0, 1)
    >>> result = simulate(lambda cid: Mean(float(cid)), num_clients=3, strategy=FedAvg(), rounds=1)
    >>> result.parameters["w"].tolist()
    [1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fedloom.backends import make_pool
from fedloom.core.client import ClientFn
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Strategy
from fedloom.engine.codec import RoundCodec
from fedloom.engine.loop import FederatedLoop, RoundObserver, RoundRecord, RunResult
from fedloom.errors import ConfigError

__all__ = ["simulate"]


def simulate(
    client_fn: ClientFn,
    *,
    num_clients: int,
    strategy: Strategy,
    rounds: int,
    initial_parameters: Parameters | None = None,
    backend: str = "inline",
    seed: int = 0,
    observers: Sequence[RoundObserver] = (),
    checkpoint_path: str | Path | None = None,
    codec: RoundCodec | None = None,
    progress: bool = False,
) -> RunResult:
    """Run ``rounds`` of ``strategy`` over ``num_clients`` clients built by ``client_fn``.

    Args:
        client_fn: ``cid -> Client``, called lazily for the clients sampled each round.
        num_clients: Clients ``"0" .. str(num_clients - 1)`` exist.
        strategy: The algorithm (any :class:`~fedloom.Strategy`).
        rounds: Rounds to run.
        initial_parameters: The first global model; client ``"0"``'s ``get_parameters`` if omitted.
        backend: A name of :data:`fedloom.backends.BACKENDS` (``inline``, ``vectorized``, ``ray``, ...).
        seed: Seed of client sampling and of each task's ``seed`` config key.
        observers: Told about every round (progress bars, stores, accountants).
        checkpoint_path: Where to write the server state after every round.
        codec: Decodes compressed client updates (e.g. :class:`fedloom.compression.UpdateCodec`).
        progress: Show a progress bar (tqdm) advanced once per round, with the latest accuracy/loss.
    """
    if num_clients < 1:
        raise ConfigError(f"num_clients must be >= 1, got {num_clients}")
    if initial_parameters is None:
        initial_parameters = client_fn("0").get_parameters({})
    bar = _Bar(rounds) if progress else None
    if bar is not None:
        observers = [*observers, bar]
    pool = make_pool(backend, client_fn, num_clients)
    try:
        loop = FederatedLoop(
            strategy, pool, num_rounds=rounds, seed=seed, observers=observers, checkpoint_path=checkpoint_path,
            codec=codec,
        )
        return loop.run(initial_parameters)
    finally:
        pool.close()
        if bar is not None:
            bar.close()


class _Bar:
    """A tqdm bar advanced once per round (tqdm loads only when a bar is asked for)."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="rounds", unit="round", dynamic_ncols=True)

    def on_round_end(self, record: RoundRecord, state: object) -> None:
        shown = {k: f"{record.metrics[k]:.4f}" for k in ("accuracy", "loss", "train_loss") if k in record.metrics}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
