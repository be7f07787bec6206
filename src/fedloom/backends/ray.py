"""The Ray backend: clients run in Ray actors, on this machine or across a Ray cluster.

`Ray <https://docs.ray.io>`_ schedules work over the cores (and GPUs) of one or many machines.
This pool starts ``workers`` actors, each reserving ``cpus_per_client`` CPUs and
``gpus_per_client`` GPUs, ships the client factory to each actor once, and sends every client task
to an actor; an actor runs its tasks one after another, exactly like the inline backend does, so
the same :class:`~fedloom.Client` and :class:`~fedloom.Strategy` code give the same numbers under
the same seed.

By default a private local Ray is started (``ray.init(num_cpus=..., include_dashboard=False)``)
and shut down by :meth:`RayPool.close`; with ``address`` (``--ray-address``) the pool joins an
existing cluster instead and leaves it running. Ray itself decides where its services listen:
it deliberately replaces a loopback node address by the machine's address
(``ray._private.services.resolve_ip_for_localhost``) and its GCS and raylet listen on that
network; recent Ray enables token authentication for them. Run it on a trusted network.

Per-client state (:class:`~fedloom.core.client_state.ClientStateStore`): the driver's entry for a
client travels with its task, the actor installs it in its own copy of the store before building
the client, and the entry as the client left it comes back and is written to the driver's store
with ``store.put``. Stateful algorithms (SCAFFOLD control variates, error-feedback residuals) thus
behave as in the inline backend, whichever actor runs a client.

Trust: between the driver and its own workers Ray serializes the client factory, parameters and
results with cloudpickle. That is fine inside one trusted cluster that you run; it is not a
transport for untrusted peers. Across organisations use the gRPC deployment, which carries only
safetensors bytes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from fedloom.backends.registry import BACKENDS
from fedloom.core.client import ClientFn
from fedloom.core.client_state import ClientState, ClientStateStore
from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.pool import PoolResult, call_fit, payload_nbytes
from fedloom.core.strategy import Failure
from fedloom.core.types import ClientId, Config, EvaluateIns, EvaluateRes, FitIns, FitRes
from fedloom.errors import ConfigError

__all__ = ["RayPool", "check_resources"]

log = logging.getLogger(__name__)


def check_resources(resources: dict[str, float], *, cpus_per_client: float, gpus_per_client: float,
                    address: str | None = None, shutdown: Any = None) -> None:
    """Fail at once when no actor could ever be placed: Ray would otherwise wait for the resources
    forever (a run that hangs without a word). ``shutdown``: stops a Ray this pool started."""
    where = f"the Ray cluster at {address}" if address else "this machine's Ray"
    problems = []
    if gpus_per_client > 0 and float(resources.get("GPU", 0.0)) < gpus_per_client:
        problems.append(f"--ray-gpus-per-client {gpus_per_client:g} but {where} has "
                        f"{float(resources.get('GPU', 0.0)):g} GPUs: use 0 (CPU clients) or a machine with GPUs")
    if float(resources.get("CPU", 0.0)) < cpus_per_client:
        problems.append(f"--ray-cpus-per-client {cpus_per_client:g} but {where} has "
                        f"{float(resources.get('CPU', 0.0)):g} CPUs: lower it (or raise --ray-num-cpus)")
    if problems:
        if shutdown is not None:
            shutdown()
        raise ConfigError("; ".join(problems))

class _Worker:
    """One Ray actor: builds clients with its copy of the factory and runs their tasks."""

    def __init__(self, payload: tuple[ClientFn, ClientStateStore | None]) -> None:
        # Factory and store arrive in one object, so a store the factory's closure refers to is
        # the very store object we write shipped state into.
        self.client_fn, self.store = payload

    def fit(
        self, cid: ClientId, parameters: Parameters, config: Config, extras: dict[str, Parameters],
        state: ClientState | None,
    ) -> tuple[str, Any, ClientState | None, float]:
        ins = FitIns(parameters, config, extras)
        return self._run(cid, state, lambda client: call_fit(client, ins))

    def evaluate(self, cid: ClientId, ins: EvaluateIns) -> tuple[str, Any, ClientState | None, float]:
        return self._run(cid, None, lambda client: client.evaluate(ins.parameters, ins.config))

    def _run(self, cid: ClientId, state: ClientState | None, call: Any) -> tuple[str, Any, ClientState | None, float]:
        start = time.perf_counter()
        if self.store is not None and state is not None:
            self.store.put(cid, state)
        try:
            result = call(self.client_fn(cid))
        except Exception as exc:  # reported as this client's failure by the driver
            return "error", f"{type(exc).__name__}: {exc}", None, time.perf_counter() - start
        new_state = None
        if self.store is not None and cid in self.store:
            new_state = self.store.get(cid)
            self.store.put(cid, {})  # the driver keeps the truth; do not hold a stale copy here
        return "ok", result, new_state, time.perf_counter() - start


class RayPool:
    """Run client tasks in Ray actors.

    Args:
        client_fn: Factory ``cid -> Client`` (shipped once to every actor).
        num_clients: Clients ``"0" .. str(num_clients - 1)`` exist.
        address: An existing cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            empty starts a private local Ray.
        num_cpus: CPUs of the local Ray (default: all cores); ignored when joining a cluster.
        cpus_per_client: CPUs each actor (and so each running client) reserves.
        gpus_per_client: GPUs (fractions allowed) each actor reserves.
        workers: Number of actors; default: as many as the cluster's CPUs allow.
        client_states: The driver's per-client state store (simulation's ``client_states``);
            shipped entries are written back to it after every task.
    """

    def __init__(
        self,
        client_fn: ClientFn,
        num_clients: int,
        *,
        address: str = "",
        num_cpus: int | None = None,
        cpus_per_client: float = 1.0,
        gpus_per_client: float = 0.0,
        workers: int | None = None,
        client_states: ClientStateStore | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as exc:  # optional extra
            raise ConfigError("backend 'ray' needs Ray: pip install 'fedloom[ray]'") from exc
        if cpus_per_client <= 0 or gpus_per_client < 0:
            raise ConfigError("cpus_per_client must be > 0 and gpus_per_client >= 0")
        self._ray = ray
        self._ids = [str(i) for i in range(num_clients)]
        self.store = client_states
        self._owns_ray = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
                self._owns_ray = True
        resources = ray.cluster_resources()
        cluster_cpus = float(resources.get("CPU", 1.0))
        check_resources(resources, cpus_per_client=cpus_per_client, gpus_per_client=gpus_per_client,
                        address=address, shutdown=ray.shutdown if self._owns_ray else None)
        count = workers or max(1, int(cluster_cpus // cpus_per_client))
        count = max(1, min(count, num_clients))
        actor = ray.remote(num_cpus=cpus_per_client, num_gpus=gpus_per_client)(_Worker)
        payload = ray.put((client_fn, client_states))
        self.actors: list[Any] = [actor.remote(payload) for _ in range(count)]

    def available(self) -> list[ClientId]:
        return self._ids

    def _gather(self, futures: list[Any], cids: list[ClientId], what: str, timeout: float | None) -> list[Any]:
        """Results per task, or a :class:`Failure` for tasks whose actor died or that ran too long."""
        ray = self._ray
        out: list[Any] = []
        for cid, fut in zip(cids, futures, strict=True):
            try:
                status, value, state, seconds = ray.get(fut)
            except Exception as exc:  # the actor died or Ray failed: this client's failure
                log.warning("client %s failed in %s on Ray: %s", cid, what, exc)
                out.append(Failure(cid, f"ray: {type(exc).__name__}: {exc}"))
                continue
            if status != "ok":
                log.warning("client %s failed in %s: %s", cid, what, value)
                out.append(Failure(cid, value))
                continue
            if state is not None and self.store is not None:
                self.store.put(cid, state)
            if timeout is not None and seconds > timeout:
                out.append(Failure(cid, f"missed the {timeout:.1f}s deadline"))
                continue
            out.append(value)
        return out

    def fit(
        self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None, timeout: float | None = None
    ) -> PoolResult[FitRes]:
        out: PoolResult[FitRes] = PoolResult()
        refs: dict[int, tuple[Any, Any]] = {}  # one object-store copy of each distinct parameter set
        futures = []
        for i, (cid, ins) in enumerate(tasks):
            out.stats.bytes_down += payload_nbytes(ins)
            if id(ins.parameters) not in refs:
                refs[id(ins.parameters)] = (ins.parameters, self._ray.put(ins.parameters))
            params_ref = refs[id(ins.parameters)][1]
            state = self.store.get(cid) if self.store is not None and cid in self.store else None
            worker = self.actors[i % len(self.actors)]
            futures.append(worker.fit.remote(cid, params_ref, ins.config, ins.extras, state))
        cids = [cid for cid, _ in tasks]
        for cid, value in zip(cids, self._gather(futures, cids, "fit", timeout), strict=True):
            if isinstance(value, Failure):
                out.failures.append(value)
            else:
                out.stats.bytes_up += payload_nbytes(value)
                out.results.append((cid, value))
        return out

    def evaluate(
        self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *, timeout: float | None = None
    ) -> PoolResult[EvaluateRes]:
        out: PoolResult[EvaluateRes] = PoolResult()
        futures = []
        for i, (cid, ins) in enumerate(tasks):
            out.stats.bytes_down += ins.parameters.nbytes
            futures.append(self.actors[i % len(self.actors)].evaluate.remote(cid, ins))
        cids = [cid for cid, _ in tasks]
        for cid, value in zip(cids, self._gather(futures, cids, "evaluate", timeout), strict=True):
            if isinstance(value, Failure):
                out.failures.append(value)
            else:
                out.results.append((cid, value))
        return out

    def close(self) -> None:
        """Stop the actors; shut Ray down if this pool started it."""
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self._ray.kill(actor)
        self.actors = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()


@BACKENDS.register("ray", help="Ray actors, on a local Ray or a cluster (--ray-address).")
def _ray_pool(client_fn: ClientFn, num_clients: int, *, options: Any = None,
              client_states: ClientStateStore | None = None) -> RayPool:
    if options is None:
        return RayPool(client_fn, num_clients, client_states=client_states)
    return RayPool(client_fn, num_clients, address=options.ray_address, num_cpus=options.ray_num_cpus or None,
                   cpus_per_client=options.ray_cpus_per_client, gpus_per_client=options.ray_gpus_per_client,
                   client_states=client_states)
