"""SCAFFOLD: stochastic controlled averaging, correcting client drift with control variates.

Paper: Sai Praneeth Karimireddy, Satyen Kale, Mehryar Mohri, Sashank J. Reddi, Sebastian U. Stich,
Ananda Theertha Suresh, "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning",
ICML 2020, arXiv:1910.06378 (Algorithm 1, option II for the client control variate).

The server keeps a control variate ``c`` (float64, in the typed component
``state.components["scaffold"] = ScaffoldState(c, num_clients)``, so checkpoints carry it) and
sends it with every task as ``FitIns.extras["scaffold_c"]``. Client ``i`` keeps its own
``c_i`` across rounds (in its persistent ``state``), trains with corrected gradients
``g - c_i + c`` for ``K`` steps of size ``lr``, sets ``c_i+ = c_i - c + (x - y) / (K lr)`` and returns
``y`` plus ``delta_c = c_i+ - c_i`` in ``FitRes.extras["scaffold_delta_c"]``. The server applies
``x <- x + server_lr * aggregate(y_i - x)`` (FedAvg's server optimizer, here
``sgd(server_lr)``) and ``c <- c + sum_i delta_c_i / N`` over all ``N`` available clients. The
client side is :class:`fedloom.torch.ScaffoldClient`.

Example:
    >>> strategy = Scaffold(server_lr=1.0, fraction_fit=0.1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure, ServerState
from fedloom.core.types import ClientId, FitIns, FitRes, Metrics
from fedloom.core.validation import check_update
from fedloom.errors import ConfigError, ValidationError
from fedloom.strategies.fedavg import FedAvg
from fedloom.strategies.registry import STRATEGIES
from fedloom.strategies.server_opts import sgd

if TYPE_CHECKING:
    from fedloom.strategies.options import StrategyOptions

__all__ = ["Scaffold", "ScaffoldState", "SCAFFOLD", "SCAFFOLD_C", "SCAFFOLD_DELTA_C"]

SCAFFOLD = "scaffold"
"""``ServerState.components`` key of the :class:`ScaffoldState`."""
SCAFFOLD_C = "scaffold_c"
"""``FitIns.extras`` key of the server control variate."""
SCAFFOLD_DELTA_C = "scaffold_delta_c"
"""``FitRes.extras`` key of a client's control-variate change."""


class ScaffoldState(NamedTuple):
    """SCAFFOLD's server state, in ``state.components["scaffold"]``.

    Attributes:
        c: The server control variate: float64 arrays for the model's floating-point entries.
        num_clients: ``N``, the number of available clients in the current round (``c`` moves by
            ``sum_i delta_c_i / N``); ``None`` until :meth:`Scaffold.configure_fit` has run.
    """

    c: Parameters
    num_clients: int | None


def control_names(parameters: Parameters) -> list[str]:
    """Entries that get control variates: the floating-point ones."""
    return [n for n, a in parameters.items() if a.dtype.kind == "f"]


class Scaffold(FedAvg):
    """SCAFFOLD server: FedAvg plus a server control variate.

    Args:
        server_lr: Global step size ``eta_g`` applied to the aggregated model update.
        **kwargs: :class:`FedAvg` arguments (sampling, aggregator, configs, evaluation), except
            ``server_opt`` (the server step is ``sgd(server_lr)``).
    """
    local_trainer = "scaffold"  # the client half of the algorithm: a name in fedloom.core.trainer.TRAINERS

    def __init__(self, *, server_lr: float = 1.0, **kwargs: Any) -> None:
        if kwargs.pop("server_opt", None) is not None:
            raise ConfigError("Scaffold sets its own server optimizer, sgd(server_lr)")
        super().__init__(**kwargs)
        self.server_opt = sgd(server_lr)
        self.server_lr = server_lr

    def initialize(self, parameters: Parameters, *, seed: int = 0) -> ServerState:
        state = super().initialize(parameters, seed=seed)
        c = Parameters({n: np.zeros(parameters[n].shape, np.float64) for n in control_names(parameters)})
        state.components[SCAFFOLD] = ScaffoldState(c=c, num_clients=None)
        return state

    def configure_fit(
        self, state: ServerState, rnd: int, clients: Sequence[ClientId]
    ) -> list[tuple[ClientId, FitIns]]:
        scaffold: ScaffoldState = state.components[SCAFFOLD]
        state.components[SCAFFOLD] = scaffold._replace(num_clients=len(clients))
        tasks = super().configure_fit(state, rnd, clients)
        c = scaffold.c
        # Sent in the model's dtypes; the server keeps its copy in float64.
        c_wire = Parameters({n: c[n].astype(state.parameters[n].dtype) for n in c})
        for _, ins in tasks:
            ins.extras[SCAFFOLD_C] = c_wire
        return tasks

    def aggregate_fit(
        self,
        state: ServerState,
        rnd: int,
        results: Sequence[tuple[ClientId, FitRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        scaffold: ScaffoldState = state.components[SCAFFOLD]
        c = scaffold.c
        expected = Parameters({n: c[n].astype(state.parameters[n].dtype) for n in c}).spec()
        valid: list[tuple[ClientId, FitRes]] = []
        failed = list(failures)
        for cid, res in results:
            try:
                dc = res.extras.get(SCAFFOLD_DELTA_C)
                if dc is None:
                    raise ValidationError(f"no {SCAFFOLD_DELTA_C!r} in the result (not a SCAFFOLD client?)")
                check_update(dc, expected)
            except ValidationError as exc:
                failed.append(Failure(cid, f"invalid SCAFFOLD result: {exc}"))
            else:
                valid.append((cid, res))
        metrics = super().aggregate_fit(state, rnd, valid, failed)
        n_total = int(len(valid) if scaffold.num_clients is None else scaffold.num_clients) or 1
        new_c = {}
        for name in c:
            total = sum(np.asarray(res.extras[SCAFFOLD_DELTA_C][name], np.float64) for _, res in valid)
            new_c[name] = c[name] + total / n_total
        state.components[SCAFFOLD] = scaffold._replace(c=Parameters(new_c))
        return metrics

    def __repr__(self) -> str:
        return f"Scaffold(server_lr={self.server_lr}, fraction_fit={self.fraction_fit}, aggregator={self.aggregator!r})"


@STRATEGIES.register("scaffold", help="Control variates against client drift (Karimireddy et al. 2020).")
def _build_scaffold(options: StrategyOptions, common: dict) -> Scaffold:
    return Scaffold(server_lr=options.server_lr or 1.0, **common)
