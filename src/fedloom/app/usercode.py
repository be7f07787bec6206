"""Your own code in a configured run: client, initial model, central evaluation and observers.

Each is named in the config as ``"package.module:factory"`` and imported by
:func:`fedloom.core.registry.load_object` (the current directory, and the folder of the config file
given to ``fedloom run/server/client --config``, are importable). The same names work in
``fedloom run``, ``fedloom server`` and ``fedloom client``, so a simulated experiment deploys
without a server script:

=====================  =================================================================================
config key             what the factory is
=====================  =================================================================================
``client_fn``          ``client_fn(cid)`` (optionally ``num_clients=``, ``seed=``) -> a Client, or any
                       object with ``fit`` and ``evaluate`` (:func:`fedloom.core.client.as_client`)
``initial_parameters`` ``factory()`` -> Parameters, a state_dict, an ``nn.Module`` or a list of arrays
``central_eval``       ``evaluate_fn(server_round, parameters)`` / ``evaluate_fn(parameters)``, or a
                       factory taking nothing that returns one; ``"none"`` turns it off
``observers``          objects with ``on_round_end(record, state)``, or classes/factories making them
``strategy``           a Strategy instance, or a class/factory called with the keyword arguments of
                       :class:`~fedloom.strategies.FedAvg` it accepts (:func:`fedloom.strategies.build_strategy`)
``aggregator``         a class/factory called with the ones of ``trim_beta, byzantine_f, multikrum_m`` it takes
``model``              ``factory(num_features=, num_outputs=, image_shape=, hidden=)`` (those it takes)
``dataset``            ``loader()`` -> ``(x, y, task, image_shape)``
=====================  =================================================================================
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fedloom.core.client import Client, ClientFn, as_client
from fedloom.core.parameters import Parameters
from fedloom.core.registry import call_with_accepted, load_object
from fedloom.core.results import as_parameters, required_positional
from fedloom.core.types import ClientId
from fedloom.errors import ConfigError

if TYPE_CHECKING:
    from fedloom.app.config import RunConfig
    from fedloom.engine import RoundObserver

__all__ = ["user_client_fn", "user_initial_parameters", "user_evaluate_fn", "user_observers", "make_user_client"]

log = logging.getLogger(__name__)


def user_client_fn(cfg: RunConfig) -> ClientFn:
    """``cid -> Client`` from the config's ``client_fn`` (each result checked and converted)."""
    factory = load_object(cfg.training.client_fn, "client_fn")
    if not callable(factory):
        raise ConfigError(f"client_fn {cfg.training.client_fn!r} is a {type(factory).__name__}, not a function")
    clients, seed = cfg.federation.clients, cfg.run.seed

    def client_fn(cid: ClientId) -> Client:
        obj = call_with_accepted(factory, cid, num_clients=clients, seed=seed)
        return as_client(obj, where=f"client_fn {cfg.training.client_fn!r}")

    return client_fn


def make_user_client(cfg: RunConfig, name: str, spec: str = "") -> Client:
    """The deployed client ``name`` from ``spec`` (``[client] client_fn``) or the config's ``client_fn``."""
    if spec:
        cfg = cfg.replace(client_fn=spec)
    return user_client_fn(cfg)(name)


def user_initial_parameters(cfg: RunConfig, client_fn: ClientFn | None) -> Parameters | None:
    """The first global model from ``initial_parameters``, else client 0's ``get_parameters`` when the
    clients are yours (``None``: use the configured model)."""
    spec = cfg.training.initial_parameters
    if spec:
        obj = load_object(spec, "initial_parameters")
        if callable(obj) and not _is_module(obj):
            obj = obj()
        if _is_module(obj):
            from fedloom.torch import module_parameters

            return module_parameters(obj)
        return as_parameters(obj, what=f"initial_parameters {spec!r}")
    if client_fn is not None:
        return client_fn("0").get_parameters({})
    return None


def _is_module(obj: Any) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "parameters", None))


def user_evaluate_fn(spec: str) -> Callable[..., Any]:
    """The central evaluation function ``spec`` names: the function itself, or (when it takes no
    argument) a factory returning it."""
    obj = load_object(spec, "central_eval")
    if not callable(obj):
        raise ConfigError(f"central_eval {spec!r} is a {type(obj).__name__}, not a function")
    if required_positional(obj) == 0 and not inspect.isclass(obj):
        obj = obj()
        if not callable(obj):
            raise ConfigError(f"central_eval {spec!r} took no argument, so it was called as a factory, and returned "
                              f"{type(obj).__name__}, not an evaluate_fn(server_round, parameters)")
    return obj  # type: ignore[no-any-return]


def user_observers(cfg: RunConfig) -> list[RoundObserver]:
    """The config's ``observers``, built."""
    out = []
    for spec in cfg.federation.observer_specs():
        obj = load_object(spec, "observer")
        if inspect.isclass(obj) or (callable(obj) and not hasattr(obj, "on_round_end")):
            obj = obj()
        if not callable(getattr(obj, "on_round_end", None)):
            raise ConfigError(f"observer {spec!r} made a {type(obj).__name__}, which has no on_round_end(record, "
                              "state) method")
        out.append(obj)
    return out
