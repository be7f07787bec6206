"""FedProx: FedAvg with a proximal term in the local objective and partial work accepted.

Paper: Tian Li, Anit Kumar Sahu, Manzil Zaheer, Maziar Sanjabi, Ameet Talwalkar, Virginia Smith,
"Federated Optimization in Heterogeneous Networks", MLSys 2020, arXiv:1812.06127.

Each client minimises ``F_k(w) + mu/2 ||w - w_global||^2`` (the server sends ``proximal_mu`` in
the fit config; the client half is :class:`~fedloom.torch.trainers.ProximalTrainer`, which every
:class:`~fedloom.torch.TorchClient` runs by default when a task asks for it), which keeps local
models near the global one on heterogeneous data. FedProx also tolerates *partial work*: a device that
completes fewer local epochs than asked still contributes. The strategy announces this with
``accept_partial_work=True`` in the fit config; a straggling client (see
:mod:`fedloom.scenarios.stragglers`) then returns what it managed, whereas under FedAvg, which
does not set the key, it is dropped from the round as in the paper's comparison.
Aggregation and the server step are FedAvg's (so any robust aggregator composes).

Example:
    >>> from fedloom.core import Parameters
    >>> strategy = FedProx(proximal_mu=1.0, fraction_fit=1 / 3)
    >>> strategy.round_fit_config(strategy.initialize(Parameters()), 1)["proximal_mu"]
    1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedloom.core.strategy import ServerState
from fedloom.core.types import Config
from fedloom.errors import ConfigError
from fedloom.strategies.fedavg import FedAvg
from fedloom.strategies.registry import STRATEGIES

if TYPE_CHECKING:
    from fedloom.strategies.options import StrategyOptions

__all__ = ["FedProx"]


class FedProx(FedAvg):
    """FedAvg whose clients add ``mu/2 ||w - w_global||^2`` and may return partial work.

    Args:
        proximal_mu: The proximal coefficient ``mu >= 0`` (0: FedAvg's objective, still keeping
            stragglers' partial work, which the paper calls "FedProx with mu = 0").
        **kwargs: :class:`FedAvg` arguments.
    """
    local_trainer = "fedprox"  # the client half of the algorithm: a name in fedloom.core.trainer.TRAINERS

    def __init__(self, *, proximal_mu: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not proximal_mu >= 0:
            raise ConfigError(f"proximal_mu must be >= 0, got {proximal_mu}")
        self.proximal_mu = float(proximal_mu)

    def round_fit_config(self, state: ServerState, rnd: int) -> Config:
        config = super().round_fit_config(state, rnd)
        config["proximal_mu"] = self.proximal_mu
        config["accept_partial_work"] = True
        return config

    def __repr__(self) -> str:
        return (
            f"FedProx(proximal_mu={self.proximal_mu}, fraction_fit={self.fraction_fit}, "
            f"aggregator={self.aggregator!r})"
        )


@STRATEGIES.register("fedprox", help="FedAvg with a proximal term and partial work (Li et al. 2020).")
def _build_fedprox(options: StrategyOptions, common: dict) -> FedProx:
    return FedProx(proximal_mu=options.proximal_mu, **common)
