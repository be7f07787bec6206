"""Simulation: build a whole federated run from a :class:`~fedloom.config.RunConfig`, or run your
own clients and strategy with :func:`simulate`.

Example:
    >>> result = run_simulation(RunConfig(dataset="iris", clients=3, rounds=2, progress=False))
    >>> len(result.history)
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedloom.backends import ClientPool, InlinePool
from fedloom.config import RunConfig
from fedloom.core.client import Client, ClientFn
from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Strategy
from fedloom.core.types import ClientId
from fedloom.data import Dataset, load_dataset, partition
from fedloom.engine import FederatedLoop, RoundCodec, RoundObserver, RunResult
from fedloom.errors import ConfigError
from fedloom.models import build_model
from fedloom.privacy import setup as privacy
from fedloom.scenarios import wrap_clients
from fedloom.strategies import CentralEvaluateFn, build_strategy
from fedloom.torch import TorchClient, make_evaluate_fn, module_parameters
from fedloom.torch.model_cache import ModelCache
from fedloom.torch.scaffold import ScaffoldClient
from fedloom.torch.training import TensorData

__all__ = ["Simulation", "assemble_loop", "build_simulation", "run_simulation", "simulate", "make_pool"]


@dataclass
class ClientSplit:
    """Indices into the dataset's client pool: one client's local train and test rows."""

    train: np.ndarray
    test: np.ndarray


@dataclass
class Simulation:
    """Everything a configured run needs, built but not yet run."""

    config: RunConfig
    dataset: Dataset
    splits: list[ClientSplit]
    client_fn: ClientFn
    strategy: Strategy
    initial_parameters: Parameters
    client_states: ClientStateStore
    codec: RoundCodec | None = None
    """Transport hook of the round loop (update decoding, broadcast compression), if any."""

    def model(self) -> nn.Module:
        """A fresh model of the configured architecture."""
        cfg, ds = self.config, self.dataset
        return build_model(
            cfg.model,
            num_features=ds.num_features,
            num_outputs=ds.num_outputs,
            image_shape=ds.image_shape,
            hidden=cfg.hidden,
        )


def split_clients(cfg: RunConfig, ds: Dataset) -> list[ClientSplit]:
    """Partition the client pool, then split each client's rows into local train and test."""
    if cfg.clients > len(ds.y_train):
        raise ConfigError(
            f"{cfg.clients} clients but only {len(ds.y_train)} training examples: use fewer clients"
        )
    labels = ds.y_train if ds.task == "classification" else np.zeros(len(ds.y_train), dtype=np.int64)
    method = cfg.partition
    if ds.task == "regression" and method in ("dirichlet", "shards"):
        raise ConfigError(f"partition {method!r} needs class labels; use iid or quantity for regression")
    parts = partition(
        labels,
        cfg.clients,
        method=method,
        alpha=cfg.alpha,
        shards_per_client=cfg.shards_per_client,
        groups=ds.groups_train,
        min_size=2 if cfg.client_test_fraction > 0 else 1,
        seed=cfg.seed,
    )
    rng = np.random.default_rng(cfg.seed + 1)
    splits = []
    for part in parts:
        shuffled = rng.permutation(part)
        n_test = int(len(part) * cfg.client_test_fraction)
        n_test = min(n_test, len(part) - 1)
        splits.append(ClientSplit(np.sort(shuffled[n_test:]), np.sort(shuffled[:n_test])))
    return splits


def _optimizer_fn(cfg: RunConfig):  # noqa: ANN202 - returns an OptimizerFn
    if cfg.optimizer == "adam":
        return lambda params, lr: torch.optim.Adam(params, lr=lr)
    momentum = cfg.momentum
    return lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=momentum)


def build_simulation(cfg: RunConfig) -> Simulation:
    """Load data, partition it, and build the client factory and strategy for ``cfg``."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    ds = load_dataset(
        cfg.dataset,
        test_fraction=cfg.test_fraction,
        seed=cfg.seed,
        target_column=cfg.target_column,
        group_column=cfg.group_column or None,
    )
    splits = split_clients(cfg, ds)
    x_pool, y_pool = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    sim = Simulation(cfg, ds, splits, client_fn=lambda cid: _never(cid), strategy=None,  # type: ignore[arg-type]
                     initial_parameters=Parameters(), client_states=ClientStateStore())
    optimizer_fn = _optimizer_fn(cfg)
    shared_model = ModelCache(sim.model)  # clients of one thread run one at a time: one module each
    shared_loss = nn.CrossEntropyLoss() if ds.task == "classification" else None  # stateless: share it

    # SCAFFOLD needs the client side of its algorithm (control variates); every other strategy
    # trains with the plain TorchClient.
    client_cls = ScaffoldClient if cfg.strategy == "scaffold" else TorchClient

    def client_fn(cid: ClientId) -> Client:
        split = splits[int(cid)]
        test = (x_pool[split.test], y_pool[split.test]) if len(split.test) else None
        client = client_cls(
            model_fn=shared_model,
            train_data=TensorData(x_pool[split.train], y_pool[split.train]),
            test_data=test,
            optimizer_fn=optimizer_fn,
            local_epochs=cfg.local_epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            task=ds.task,
            state=sim.client_states.get(cid),
            dp_sgd=privacy.dp_sgd_settings(cfg),  # privacy
            loss_fn=shared_loss,
        )
        return privacy.wrap_client(cfg, client, sim.client_states.get(cid))  # privacy

    # -- simulated stragglers and attackers (fedloom.scenarios); identity when none configured
    sim.client_fn = wrap_clients(client_fn, cfg, num_clients=len(splits))
    torch.manual_seed(cfg.seed)
    sim.initial_parameters = module_parameters(sim.model())
    common = _common_strategy_kwargs(cfg, sim)  # built once: it holds the central-evaluation model
    sim.strategy = build_strategy(cfg, common)
    sim.strategy = privacy.wrap_strategy(cfg, sim.strategy)  # privacy
    # -- communication: update compression and homomorphic encryption wrap clients/strategy --
    from fedloom.compression.setup import apply_compression

    apply_compression(sim)
    if cfg.he:
        from fedloom.privacy.he.setup import apply_he

        apply_he(sim, common)
    return sim


def _never(cid: ClientId) -> Client:
    raise RuntimeError("client_fn used before build_simulation finished")


def central_evaluate_fn(sim: Simulation) -> CentralEvaluateFn:
    """Evaluate global parameters on the server's held-out test set."""
    ds = sim.dataset
    test = TensorData(torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test))
    return make_evaluate_fn(sim.model, test, task=ds.task)


def _common_strategy_kwargs(cfg: RunConfig, sim: Simulation) -> dict:
    return {
        "fraction_fit": cfg.fraction,
        "min_fit_clients": min(cfg.min_clients, cfg.clients),
        "fraction_evaluate": cfg.fraction_evaluate,
        "weighted": cfg.weighted,
        "fit_config": {"local_epochs": cfg.local_epochs, "lr": cfg.lr, "batch_size": cfg.batch_size},
        "evaluate_fn": central_evaluate_fn(sim),
    }


def make_pool(backend: str, client_fn: ClientFn, num_clients: int, **options: object) -> ClientPool:
    """The client pool for a backend name (see :data:`fedloom.backends.BACKENDS`)."""
    if backend == "inline":
        return InlinePool(client_fn, num_clients)
    if backend == "vectorized":
        from fedloom.backends.vectorized import VectorizedPool

        return VectorizedPool(client_fn, num_clients)
    if backend == "ray":
        from fedloom.backends.ray import RayPool

        return RayPool(client_fn, num_clients, **options)  # type: ignore[arg-type]
    raise ConfigError(f"unknown backend {backend!r}")


def backend_options(cfg: RunConfig, sim: Simulation) -> dict[str, object]:
    """Keyword options of the configured backend's pool (see :func:`make_pool`)."""
    if cfg.backend == "ray":
        return {
            "address": cfg.ray_address,
            "num_cpus": cfg.ray_num_cpus or None,
            "cpus_per_client": cfg.ray_cpus_per_client,
            "gpus_per_client": cfg.ray_gpus_per_client,
            "client_states": sim.client_states,
        }
    return {}


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
) -> RunResult:
    """Run ``rounds`` of ``strategy`` over ``num_clients`` clients built by ``client_fn``.

    If ``initial_parameters`` is omitted, client ``"0"``'s :meth:`~fedloom.Client.get_parameters`
    initialises the global model. ``codec`` decodes compressed client updates (e.g.
    :class:`fedloom.compression.UpdateCodec`).
    """
    if num_clients < 1:
        raise ConfigError(f"num_clients must be >= 1, got {num_clients}")
    if initial_parameters is None:
        initial_parameters = client_fn("0").get_parameters({})
    pool = make_pool(backend, client_fn, num_clients)
    try:
        loop = FederatedLoop(
            strategy, pool, num_rounds=rounds, seed=seed, observers=observers, checkpoint_path=checkpoint_path,
            codec=codec,
        )
        return loop.run(initial_parameters)
    finally:
        pool.close()


def run_simulation(
    config: RunConfig | None = None,
    *,
    observers: Sequence[RoundObserver] = (),
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
) -> RunResult:
    """Build and run the simulation ``config`` describes (defaults if omitted)."""
    cfg = config or RunConfig()
    sim = build_simulation(cfg)
    # Simulated clients' own state (SCAFFOLD's c_i, ...) is saved beside the server checkpoint after
    # every round, so that a resumed simulation continues with it, as deployed clients would.
    if checkpoint_path is not None:
        client_file = Path(f"{checkpoint_path}.clients")
        if resume and client_file.exists():
            sim.client_states.load(client_file)
        observers = [_SaveClientStates(sim.client_states, client_file), *observers]
    pool = make_pool(cfg.backend, sim.client_fn, cfg.clients, **backend_options(cfg, sim))
    loop = assemble_loop(sim, pool, observers=observers, checkpoint_path=checkpoint_path)
    try:
        resumed = loop.resume_state() if resume else None
        if resumed is not None:
            state, history = resumed
            return loop.run(state=state, history=history)
        return loop.run(sim.initial_parameters)
    finally:
        loop.pool.close()


def assemble_loop(
    sim: Simulation,
    pool: ClientPool,
    *,
    observers: Sequence[RoundObserver] = (),
    checkpoint_path: str | Path | None = None,
    round_timeout: float | None = None,
) -> FederatedLoop:
    """The round loop of a built experiment over any pool (in-process, Ray, gRPC).

    Applies what the config asks of the server side: the privacy pool wrapper (SecAgg+) and the
    epsilon observer (first, so stores and progress bars see ``epsilon``), and the update codec.
    """
    cfg = sim.config
    observers = [*privacy.privacy_observers(cfg), *observers]  # privacy: epsilon first, so stores see it
    pool = privacy.wrap_pool(cfg, pool, num_parameters=sim.initial_parameters.num_elements)  # privacy
    return FederatedLoop(
        sim.strategy,
        pool,
        num_rounds=cfg.rounds,
        seed=cfg.seed,
        observers=observers,
        checkpoint_path=checkpoint_path,
        round_timeout=round_timeout,
        eval_every=cfg.eval_every,
        codec=sim.codec,
    )


class _SaveClientStates:
    """Round observer: write the simulated clients' state store (only when it holds something)."""

    def __init__(self, store: ClientStateStore, path: Path) -> None:
        self.store, self.path = store, path

    def on_round_end(self, record: object, state: object) -> None:
        if self.store.nbytes:  # stateless clients leave only empty entries: nothing to write
            self.store.save(self.path)
