"""Build a whole federated run from a :class:`~fedloom.app.config.RunConfig`: config -> components.

:func:`build_simulation` loads and partitions the data, makes the training client factory, puts
the configured client layers around it (:mod:`fedloom.app.layers`), builds the strategy (and its
central-DP or HE variant) and the round loop's codec. :func:`assemble_loop` makes the round loop
over any pool (in-process, vectorized, Ray, gRPC) with the server-side privacy parts, so a
simulation and a deployment of the same config run the same code.

Example:
    >>> from fedloom.app.config import RunConfig
    >>> result = run_simulation(RunConfig(dataset="iris", clients=3, rounds=2, progress=False))
    >>> len(result.history)
    2
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fedloom.app import privacy, tabular, usercode
from fedloom.app.config import RunConfig
from fedloom.app.layers import client_layers, stack
from fedloom.backends import make_pool
from fedloom.core.client import Client, ClientFn
from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.pool import ClientPool
from fedloom.core.strategy import Strategy
from fedloom.core.trainer import TRAINERS, LocalTrainer
from fedloom.core.types import ClientId
from fedloom.data import Dataset, load_dataset, partition
from fedloom.engine import FederatedLoop, RoundCodec, RoundObserver, RunResult
from fedloom.errors import ConfigError
from fedloom.models import build_model
from fedloom.personalization import build_method
from fedloom.strategies import CentralEvaluateFn, build_strategy

if TYPE_CHECKING:  # torch loads only for torch models (a scikit-learn or XGBoost run never imports it)
    from torch import nn

__all__ = ["Simulation", "Side", "assemble_async_loop", "assemble_loop", "fleet", "build_simulation",
           "run_simulation", "make_run_pool"]

Side = Literal["both", "server", "client"]
"""The roles a process plays: a simulation plays both; ``fedloom server`` and ``fedloom client`` one each."""

log = logging.getLogger(__name__)


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
    full_initial_parameters: Parameters | None = None
    """The whole initial model, personal heads included (``initial_parameters`` is what is federated)."""

    def model(self) -> nn.Module:  # noqa: F821 - torch's nn, imported for type checkers
        """A fresh model of the configured architecture."""
        cfg, ds = self.config, self.dataset
        return build_model(
            cfg.training.model,
            num_features=ds.num_features,
            num_outputs=ds.num_outputs,
            image_shape=ds.image_shape,
            hidden=cfg.training.hidden,
        )


def split_clients(cfg: RunConfig, ds: Dataset) -> list[ClientSplit]:
    """Partition the client pool, then split each client's rows into local train and test."""
    if cfg.federation.clients > len(ds.y_train):
        raise ConfigError(
            f"{cfg.federation.clients} clients but only {len(ds.y_train)} training examples: use fewer clients"
        )
    labels = ds.y_train if ds.task == "classification" else np.zeros(len(ds.y_train), dtype=np.int64)
    method = cfg.data.partition
    if ds.task == "regression" and method in ("dirichlet", "shards"):
        raise ConfigError(f"partition {method!r} needs class labels; use iid or quantity for regression")
    parts = partition(
        labels,
        cfg.federation.clients,
        method=method,
        alpha=cfg.data.alpha,
        shards_per_client=cfg.data.shards_per_client,
        groups=ds.groups_train,
        min_size=2 if cfg.data.client_test_fraction > 0 else 1,
        seed=cfg.run.seed,
    )
    rng = np.random.default_rng(cfg.run.seed + 1)
    splits = []
    for part in parts:
        shuffled = rng.permutation(part)
        n_test = int(len(part) * cfg.data.client_test_fraction)
        n_test = min(n_test, len(part) - 1)
        splits.append(ClientSplit(np.sort(shuffled[n_test:]), np.sort(shuffled[:n_test])))
    return splits


def local_split(cfg: RunConfig, ds: Dataset) -> ClientSplit:
    """A site's own data as one client: every training row, ``client_test_fraction`` of them held out."""
    rows = np.arange(len(ds.y_train))
    shuffled = np.random.default_rng(cfg.run.seed + 1).permutation(rows)
    n_test = min(int(len(rows) * cfg.data.client_test_fraction), len(rows) - 1)
    return ClientSplit(np.sort(shuffled[n_test:]), np.sort(shuffled[:n_test]))


def torch_client_factory(cfg: RunConfig, sim: Simulation) -> ClientFn:
    """``cid -> TorchClient`` on that client's split: the client half of the configured algorithm."""
    import torch

    from fedloom.torch import TorchClient
    from fedloom.torch.model_cache import ModelCache
    from fedloom.torch.optimizers import OPTIMIZERS
    from fedloom.torch.training import TensorData

    ds, splits = sim.dataset, sim.splits
    x_pool, y_pool = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    optimizer_fn = OPTIMIZERS.get(cfg.training.optimizer)(cfg.training)
    shared_model = ModelCache(sim.model)  # clients of one thread run one at a time: one module each
    shared_loss = torch.nn.CrossEntropyLoss() if ds.task == "classification" else None  # stateless: share it
    dp_sgd = privacy.dp_sgd_settings(cfg)
    train = cfg.training
    trainers: dict[str, LocalTrainer] = {}

    def trainer() -> LocalTrainer | None:
        """The strategy's client half (its ``local_trainer``), or DP-SGD's (which replaces plain epochs)."""
        if dp_sgd is not None:
            return None  # TorchClient(dp_sgd=...) trains with DPSGDTrainer
        name = sim.strategy.local_trainer  # read when a client is built: the strategy exists by then
        if name not in trainers:
            trainers[name] = TRAINERS.get(name)()
        return trainers[name]

    method = build_method(cfg.personal)  # personalization: a PersonalClient runs it

    def client_fn(cid: ClientId) -> Client:
        split = splits[int(cid)]
        test = (x_pool[split.test], y_pool[split.test]) if len(split.test) else None
        make: Any = TorchClient
        if method is not None:
            from fedloom.personalization.client import PersonalClient

            make = partial(PersonalClient, method=method, initial_parameters=sim.full_initial_parameters)
        return make(
            model_fn=shared_model,
            train_data=TensorData(x_pool[split.train], y_pool[split.train]),
            test_data=test,
            optimizer_fn=optimizer_fn,
            local_epochs=train.local_epochs,
            batch_size=train.batch_size,
            lr=train.lr,
            task=ds.task,
            state=sim.client_states.get(cid),
            dp_sgd=dp_sgd,
            loss_fn=shared_loss,
            trainer=trainer(),
        )

    return client_fn


def build_simulation(cfg: RunConfig, *, min_fit_results: int = 1, side: Side = "both",
                     local_data: Dataset | None = None) -> Simulation:
    """Load data, partition it, and build the client factory, strategy and codec ``cfg`` describes.

    Args:
        cfg: The configuration (validated here).
        min_fit_results: Valid results a round needs to aggregate (a deployment's
            ``min_clients_aggregate``); fewer fail the round.
        side: The roles this process plays (see :func:`_he_keys` for the keys each holds).
            ``"server"`` builds no client factory; ``"client"`` builds the strategy only for the
            name of its local trainer.
        local_data: A deployed client's own data (``fedloom client --data``): one client, ``"0"``,
            holds all of it (its local test split as configured) instead of a partition of the
            configured dataset.
    """
    cfg.validate()
    seed = cfg.run.seed
    family = tabular.model_family(cfg)  # torch, sklearn or xgboost
    _seed_torch(family, seed)
    data = cfg.data
    ds = load_dataset(
        data.dataset,
        test_fraction=data.test_fraction,
        seed=seed,
        target_column=data.target_column,
        group_column=data.group_column or None,
        labels=data.label_list,
    ) if local_data is None else local_data
    splits = split_clients(cfg, ds) if local_data is None else [local_split(cfg, ds)]
    sim = Simulation(
        cfg,
        ds,
        splits,
        client_fn=_never,
        strategy=None,  # type: ignore[arg-type]
        initial_parameters=Parameters(),
        client_states=ClientStateStore(),
    )
    codec, sim.codec = _codecs(cfg)
    he_secret, he_public = _he_keys(cfg, side)
    own = usercode.user_client_fn(cfg) if cfg.training.client_fn else None  # your client, or the built-in one
    if side == "server":
        sim.client_fn = _server_side
    else:
        layers = client_layers(cfg, num_clients=len(splits), states=sim.client_states, codec=codec,
                               he_context=he_secret)
        builtin = torch_client_factory if family == "torch" else tabular.client_factory
        sim.client_fn = stack(own or builtin(cfg, sim), layers)
    _seed_torch(family, seed)
    yours = usercode.user_initial_parameters(cfg, own)
    sim.full_initial_parameters = yours if yours is not None else _initial_parameters(family, cfg, sim)
    sim.initial_parameters = federated_parameters(cfg, sim.full_initial_parameters)  # personal heads stay home
    _seed_torch(family, seed)
    common = _common_strategy_kwargs(cfg, sim, min_fit_results)  # built once: it holds the evaluation model
    if family == "xgboost":
        sim.strategy = tabular.tree_strategy(cfg, sim, common)
    elif he_public is not None:
        from fedloom.privacy.he import HEFedAvg

        # the server holds the public context only; it can neither evaluate centrally nor use robust aggregators
        sim.strategy = HEFedAvg(context=he_public, **{k: v for k, v in common.items() if k != "evaluate_fn"})
    else:
        sim.strategy = privacy.wrap_strategy(cfg, build_strategy(cfg.algorithm, common))
    return sim


def _seed_torch(family: str, seed: int) -> None:
    if family == "torch":
        import torch

        torch.manual_seed(seed)


def _initial_parameters(family: str, cfg: RunConfig, sim: Simulation) -> Parameters:
    """The configured model's first global parameters (a torch module's, an estimator's or an empty ensemble)."""
    if family != "torch":
        return tabular.initial_parameters(cfg, sim)
    from fedloom.torch import module_parameters

    return module_parameters(sim.model())
def federated_parameters(cfg: RunConfig, full: Parameters) -> Parameters:
    """The entries of the whole model that are federated: all of them, or the body under FedPer/FedRep."""
    method = build_method(cfg.personal)
    if method is None:
        return full
    from fedloom.personalization.base import shared_parameters

    return shared_parameters(full, method.shared(list(full)))


def _codecs(cfg: RunConfig) -> tuple[Any, RoundCodec | None]:
    """The clients' update codec and the round loop's decoder (``None, None`` without compression)."""
    comm = cfg.communication
    if comm.compression == "none" and not comm.compress_broadcast:
        return None, None
    from fedloom.compression import CODECS, UpdateCodec
    from fedloom.compression.wire import Float32Codec

    codec = CODECS.get(comm.compression)(topk_fraction=comm.topk_fraction, quant_block=comm.quant_block)
    if codec is None:  # float16 broadcast only: updates go back in float32, taken against what was received
        codec = Float32Codec()
    return codec, UpdateCodec(codec, compress_broadcast=comm.compress_broadcast)


def _he_keys(cfg: RunConfig, side: Side) -> tuple[Any, Any]:
    """The CKKS contexts ``side`` holds: ``(secret for the clients' HE layer, public for HEFedAvg)``.

    The server side loads only ``public.tenseal`` and never holds the secret key. A client loads
    ``secret.tenseal`` (its public half serves the strategy object it builds). A simulation plays
    both roles and the trusted party that makes the keys, unless ``--he-keys`` names a directory
    written by ``fedloom he-keys``; deployed processes need that directory (``None, None`` without
    ``--he``)."""
    enc = cfg.encryption
    if not enc.he:
        return None, None
    from fedloom.privacy.he.context import load_context, make_context, public_bytes, read_public, read_secret

    if side != "both" and not enc.he_keys:
        needs = "public.tenseal (the server never holds secret.tenseal)" if side == "server" else "secret.tenseal"
        raise ConfigError(f"a deployed HE {side} needs he_keys: a `fedloom he-keys` directory holding {needs}; "
                          "fresh keys made by each process could not decrypt one another")
    if side == "server":
        return None, read_public(enc.he_keys)
    if enc.he_keys:
        secret = read_secret(enc.he_keys)
    else:
        secret = make_context(poly_degree=enc.he_poly_degree, scale_bits=enc.he_scale)
    return secret, load_context(public_bytes(secret))  # the public copy: serialized without the secret key


def _never(cid: ClientId) -> Client:
    raise RuntimeError("client_fn used before build_simulation finished")


def _server_side(cid: ClientId) -> Client:
    raise RuntimeError("a server-side build (side='server') has no clients: they run elsewhere")


def central_evaluate_fn(sim: Simulation) -> CentralEvaluateFn:
    """Evaluate global parameters on the server's held-out test set (the built-in central evaluation)."""
    if tabular.model_family(sim.config) != "torch":
        return tabular.evaluate_fn(sim.config, sim)
    import torch

    from fedloom.torch import make_evaluate_fn
    from fedloom.torch.training import TensorData

    ds = sim.dataset
    test = TensorData(torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test))
    return make_evaluate_fn(sim.model, test, task=ds.task)


def _common_strategy_kwargs(cfg: RunConfig, sim: Simulation, min_fit_results: int) -> dict:
    fed, train = cfg.federation, cfg.training
    central_dp = cfg.privacy.dp in ("central", "central-adaptive")
    return {
        "fraction_fit": fed.fraction,
        "min_fit_clients": min(fed.min_clients, fed.clients),
        "min_fit_results": min_fit_results,
        "fraction_evaluate": fed.fraction_evaluate,
        "weighted": fed.weighted and cfg.algorithm.weighting == "examples",
        # central DP draws its own Poisson cohort; the strategy it wraps keeps the uniform one for its template
        "sampling": "uniform" if central_dp else cfg.algorithm.sampling or "uniform",
        "fit_config": {"local_epochs": train.local_epochs, "lr": train.lr, "batch_size": train.batch_size},
        "evaluate_fn": configured_evaluate_fn(cfg, sim),
    }


def configured_evaluate_fn(cfg: RunConfig, sim: Simulation) -> CentralEvaluateFn | None:
    """The central evaluation ``central_eval`` selects: the built-in one on the server's split of
    ``--dataset``, none, or your ``module:factory`` (``auto``: built-in, or none with your own clients,
    whose model the built-in evaluation does not know)."""
    choice = cfg.federation.central_eval
    if choice == "auto":  # your clients' model, or a body without its heads (FedPer/FedRep): nothing to evaluate
        head_only = cfg.personal.personalization in ("fedper", "fedrep")
        choice = "none" if cfg.training.client_fn or head_only else "builtin"
    if choice == "none":
        return None
    if choice == "builtin":
        return central_evaluate_fn(sim)
    return usercode.user_evaluate_fn(choice)


def make_run_pool(cfg: RunConfig, sim: Simulation) -> ClientPool:
    """The pool of the configured backend (``--backend``) over the simulation's clients."""
    return make_pool(
        cfg.execution.backend,
        sim.client_fn,
        cfg.federation.clients,
        options=cfg.execution,
        client_states=sim.client_states,
    )


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
    _assign_example_counts(sim)
    # Simulated clients' own state (SCAFFOLD's c_i, DP-SGD step counts, error-feedback residuals) is
    # written into the server checkpoint, in the same atomic write, so that a resumed simulation
    # continues with the clients' state of the same round, as deployed clients would.
    client_states = sim.client_states if checkpoint_path is not None else None
    pool = make_run_pool(cfg, sim)
    loop: Any
    if cfg.asynchrony.mode == "async":
        loop = assemble_async_loop(sim, pool, observers=observers, checkpoint_path=checkpoint_path,
                                   client_states=client_states)
    else:
        loop = assemble_loop(sim, pool, observers=observers, checkpoint_path=checkpoint_path,
                             client_states=client_states)
    try:
        resumed = loop.resume_state() if resume else None
        if cfg.asynchrony.mode == "sync" and cfg.heterogeneity.enabled():  # rounds on the fleet's virtual clock
            from fedloom.scenarios.virtual_clock import VirtualClockPool

            start = resumed[1][-1].metrics.get("virtual_time_s", 0.0) if resumed and resumed[1] else 0.0
            loop.pool = VirtualClockPool(loop.pool, fleet(cfg), deadline_s=cfg.heterogeneity.virtual_deadline_s,
                                         start_s=start)
        if resumed is not None:
            _load_legacy_client_states(sim, Path(str(checkpoint_path)))
            state, history = resumed
            return loop.run(state=state, history=history)  # type: ignore[no-any-return]
        return loop.run(sim.initial_parameters)  # type: ignore[no-any-return]
    finally:
        loop.pool.close()


def fleet(cfg: RunConfig) -> Any:
    """The simulated fleet's :class:`~fedloom.scenarios.heterogeneity.Heterogeneity` (``[heterogeneity]``)."""
    from fedloom.scenarios.heterogeneity import Heterogeneity

    h = cfg.heterogeneity
    return Heterogeneity(cfg.federation.clients, device_speed=h.device_speed, availability=h.availability,
                         unavailable=h.unavailable, period_s=h.availability_period_s,
                         seconds_per_example=h.seconds_per_example, bandwidth_mbps=h.bandwidth_mbps,
                         seed=cfg.run.seed)


def assemble_async_loop(
    sim: Simulation,
    pool: ClientPool,
    *,
    observers: Sequence[RoundObserver] = (),
    checkpoint_path: str | Path | None = None,
    round_timeout: float | None = None,
    client_states: ClientStateStore | None = None,
    driver: Any = None,
) -> Any:
    """The asynchronous loop (:class:`~fedloom.engine.async_loop.AsyncLoop`) of a built experiment.

    ``driver``: ``None`` simulates on the fleet's virtual clock (``[heterogeneity]``); a deployment
    passes a real-time driver. Privacy and the round ledger are not assembled: the rules refuse
    DP/SecAgg/HE with ``--mode async``, and the ledger records synchronous rounds only.
    """
    from fedloom.app.rules import cohort_size
    from fedloom.engine.async_loop import AsyncLoop, VirtualDriver
    from fedloom.strategies.staleness import staleness_fn

    cfg = sim.config
    a = cfg.asynchrony
    if cfg.ledger.write_ledger:
        log.info("--mode async writes no round ledger (it records synchronous rounds)")
    return AsyncLoop(
        sim.strategy,
        pool,
        num_updates=cfg.federation.rounds,
        seed=cfg.run.seed,
        aggregation=a.async_aggregation,
        buffer_size=a.buffer_size,
        concurrency=a.concurrency or cohort_size(cfg),
        staleness=staleness_fn(a.staleness),
        max_staleness=a.max_staleness,
        alpha=a.async_alpha,
        driver=driver if driver is not None else VirtualDriver(fleet(cfg)),
        observers=[*observers, *usercode.user_observers(cfg)],
        checkpoint_path=checkpoint_path,
        round_timeout=round_timeout,
        eval_every=cfg.federation.eval_every,
        codec=sim.codec,
        max_model_change=cfg.federation.max_model_change,
        client_states=client_states,
    )


def _assign_example_counts(sim: Simulation) -> None:
    """In simulation the server knows how many training examples it gave each client: a FedAvg-family
    strategy cuts every claimed count to that (a deployed server cannot, and caps claims at a
    multiple of the round's median instead)."""
    from fedloom.strategies import FedAvg

    if sim.config.training.client_fn:  # your clients hold their own data: the server knows no counts
        return
    if isinstance(sim.strategy, FedAvg) and sim.strategy.assigned_examples is None:
        sim.strategy.assigned_examples = {str(i): len(split.train) for i, split in enumerate(sim.splits)}


def _load_legacy_client_states(sim: Simulation, checkpoint_path: Path) -> None:
    """Checkpoints written before the client state moved into them kept it in ``<checkpoint>.clients``."""
    from fedloom.engine import load_client_states

    legacy = Path(f"{checkpoint_path}.clients")
    if legacy.exists() and not load_client_states(checkpoint_path, ClientStateStore()):
        log.warning("resuming with the client state of %s, written separately by an older fedloom: it may "
                    "belong to another round than the checkpoint", legacy)
        sim.client_states.load(legacy)


def assemble_loop(
    sim: Simulation,
    pool: ClientPool,
    *,
    observers: Sequence[RoundObserver] = (),
    checkpoint_path: str | Path | None = None,
    round_timeout: float | None = None,
    client_states: ClientStateStore | None = None,
    ledger_keys: str | None = None,
    receipts: bool = False,
) -> FederatedLoop:
    """The round loop of a built experiment over any pool (in-process, Ray, gRPC).

    Applies what the config asks of the server side: the privacy pool wrapper (SecAgg+) and the
    epsilon observer (first, so stores and progress bars see ``epsilon``), the update codec and the
    bound on the global model's change per round. ``client_states``: the simulated clients' state,
    checkpointed with the server state (a deployment leaves it out: its clients keep their own).
    The round ledger goes next to the checkpoint (``ledger_keys``: the folder holding the server's
    ``ledger.key``; ``receipts``: send each client its signed receipt, see :mod:`fedloom.ledger`).
    """
    from fedloom.app.accountability import ledger_parts

    cfg = sim.config
    run_dir = Path(checkpoint_path).parent if checkpoint_path is not None else None
    pool, accountability = ledger_parts(sim, pool, run_dir, evaluate_fn=lambda: central_evaluate_fn(sim),
                                        key_dir=ledger_keys, receipts=receipts)  # on the transport
    # privacy: epsilon first, so stores and the ledger see it; yours (``observers``) after the caller's
    observers = [*privacy.privacy_observers(cfg), *accountability, *observers, *usercode.user_observers(cfg)]
    pool = privacy.wrap_pool(cfg, pool, num_parameters=sim.initial_parameters.num_elements)  # privacy
    return FederatedLoop(
        sim.strategy,
        pool,
        num_rounds=cfg.federation.rounds,
        seed=cfg.run.seed,
        observers=observers,
        checkpoint_path=checkpoint_path,
        round_timeout=round_timeout,
        eval_every=cfg.federation.eval_every,
        codec=sim.codec,
        max_model_change=cfg.federation.max_model_change,
        client_states=client_states,
    )
