"""Server optimizers: FedAvgM (server momentum) and the FedOpt family FedAdagrad, FedAdam, FedYogi.

Papers:
    * FedAvgM: Tzu-Ming Harry Hsu, Hang Qi, Matthew Brown, "Measuring the Effects of Non-Identical
      Data Distribution for Federated Visual Classification", arXiv:1909.06335 (2019).
    * FedAdagrad / FedAdam / FedYogi: Sashank J. Reddi, Zachary Charles, Manzil Zaheer, Zachary
      Garrett, Keith Rush, Jakub Konečný, Sanjiv Kumar, H. Brendan McMahan, "Adaptive Federated
      Optimization", ICLR 2021, arXiv:2003.00295 (Algorithm 2).

Clients run plain local training; the aggregated update ``delta`` (the mean of ``w_i - w``, or
whatever the ``aggregator`` returns) is treated as a pseudo-gradient by a server optimizer. Each is
a :class:`~fedloom.strategies.fedavg.FedAvg` whose :meth:`server_update` is overridden; the moments
live in ``state.buffers`` (as flat float64 vectors) so that checkpoints carry them and a resumed
run continues exactly.

Following Algorithm 2 of Reddi et al.: ``m <- b1 m + (1 - b1) delta``, then

* Adagrad: ``v <- v + delta^2``
* Adam:    ``v <- b2 v + (1 - b2) delta^2``
* Yogi:    ``v <- v - (1 - b2) delta^2 sign(v - delta^2)``

and ``w <- w + server_lr * m / (sqrt(v) + tau)``, with ``m = 0`` and ``v = tau^2`` initially and no
bias correction.

Example:
    >>> strategy = FedAdam(server_lr=0.01, beta1=0.9, beta2=0.99, tau=1e-3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import ServerState
from fedloom.errors import ConfigError
from fedloom.strategies.fedavg import FedAvg
from fedloom.strategies.registry import STRATEGIES

if TYPE_CHECKING:
    from fedloom.strategies.options import StrategyOptions

__all__ = ["FedAvgM", "FedAdagrad", "FedAdam", "FedYogi", "FedOpt"]


def _get_vector(state: ServerState, name: str, like: np.ndarray, fill: float) -> np.ndarray:
    buf = state.buffers.get(name)
    if buf is None:
        return np.full_like(like, fill, dtype=np.float64)
    return np.asarray(buf["vector"], dtype=np.float64).copy()


def _put_vector(state: ServerState, name: str, vector: np.ndarray) -> None:
    state.buffers[name] = Parameters({"vector": vector})


class FedAvgM(FedAvg):
    """FedAvg with server momentum: ``v <- momentum * v + delta``; ``w <- w + server_lr * v``.

    Args:
        server_lr: Server learning rate.
        server_momentum: Momentum coefficient in ``[0, 1)``; 0 gives FedAvg scaled by ``server_lr``.
        **kwargs: :class:`FedAvg` arguments (sampling, aggregator, configs, evaluation).
    """

    def __init__(self, *, server_lr: float = 1.0, server_momentum: float = 0.9, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not server_lr > 0:
            raise ConfigError(f"server_lr must be > 0, got {server_lr}")
        if not 0.0 <= server_momentum < 1.0:
            raise ConfigError(f"server_momentum must be in [0, 1), got {server_momentum}")
        self.server_lr = server_lr
        self.server_momentum = server_momentum

    def server_update(self, state: ServerState, rnd: int, delta: np.ndarray) -> None:
        velocity = self.server_momentum * _get_vector(state, "momentum", delta, 0.0) + delta
        _put_vector(state, "momentum", velocity)
        state.parameters = state.parameters.unflatten(state.parameters.flatten() + self.server_lr * velocity)


class FedOpt(FedAvg):
    """Base of the adaptive server optimizers; subclasses define :meth:`second_moment`.

    Args:
        server_lr: Server learning rate ``eta`` (default: :attr:`default_server_lr`, 0.01; 0.1 for
            FedAdagrad, whose denominator only grows).
        beta1: First-moment decay in ``[0, 1)``.
        beta2: Second-moment decay in ``[0, 1)`` (unused by FedAdagrad).
        tau: Adaptivity ``tau > 0``: larger is closer to FedAvgM.
        **kwargs: :class:`FedAvg` arguments.
    """

    default_server_lr: float = 0.01
    """Server learning rate when none is given."""

    def __init__(
        self,
        *,
        server_lr: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        server_lr = self.default_server_lr if server_lr is None else server_lr
        if not server_lr > 0:
            raise ConfigError(f"server_lr must be > 0, got {server_lr}")
        if not 0.0 <= beta1 < 1.0:
            raise ConfigError(f"beta1 must be in [0, 1), got {beta1}")
        if not 0.0 <= beta2 < 1.0:
            raise ConfigError(f"beta2 must be in [0, 1), got {beta2}")
        if not tau > 0:
            raise ConfigError(f"tau must be > 0, got {tau}")
        self.server_lr = server_lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.tau = tau

    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The new ``v`` from the previous one and this round's update."""
        raise NotImplementedError

    def server_update(self, state: ServerState, rnd: int, delta: np.ndarray) -> None:
        m = self.beta1 * _get_vector(state, "fedopt_m", delta, 0.0) + (1.0 - self.beta1) * delta
        v = self.second_moment(_get_vector(state, "fedopt_v", delta, self.tau**2), delta)
        _put_vector(state, "fedopt_m", m)
        _put_vector(state, "fedopt_v", v)
        step = self.server_lr * m / (np.sqrt(v) + self.tau)
        state.parameters = state.parameters.unflatten(state.parameters.flatten() + step)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(server_lr={self.server_lr}, beta1={self.beta1}, beta2={self.beta2}, "
            f"tau={self.tau}, aggregator={self.aggregator!r})"
        )


class FedAdagrad(FedOpt):
    """FedAdagrad: ``v <- v + delta^2`` (Reddi et al., 2021)."""

    default_server_lr = 0.1

    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return v + delta**2


class FedAdam(FedOpt):
    """FedAdam: ``v <- beta2 v + (1 - beta2) delta^2`` (Reddi et al., 2021)."""

    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1.0 - self.beta2) * delta**2


class FedYogi(FedOpt):
    """FedYogi: ``v <- v - (1 - beta2) delta^2 sign(v - delta^2)`` (Reddi et al., 2021)."""

    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        d2 = delta**2
        return v - (1.0 - self.beta2) * d2 * np.sign(v - d2)


@STRATEGIES.register("fedavgm", help="FedAvg with server momentum (Hsu et al. 2019).")
def _build_fedavgm(options: StrategyOptions, common: dict) -> FedAvgM:
    return FedAvgM(server_lr=options.server_lr or 1.0, server_momentum=options.server_momentum, **common)


def _fedopt_builder(cls: type[FedOpt]):  # noqa: ANN202 - a StrategyBuilder
    def build(options: StrategyOptions, common: dict) -> FedOpt:
        return cls(server_lr=options.server_lr or None, beta1=options.beta1, beta2=options.beta2, tau=options.tau,
                   **common)

    return build


STRATEGIES.register("fedadam", _fedopt_builder(FedAdam), help="Adam on the server (Reddi et al. 2021).")
STRATEGIES.register("fedyogi", _fedopt_builder(FedYogi), help="Yogi on the server (Reddi et al. 2021).")
STRATEGIES.register("fedadagrad", _fedopt_builder(FedAdagrad), help="Adagrad on the server (Reddi et al. 2021).")
