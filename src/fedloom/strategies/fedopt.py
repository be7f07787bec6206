"""Server-optimizer presets: FedAvgM (server momentum) and the FedOpt family FedAdagrad, FedAdam, FedYogi.

Papers:
    * FedAvgM: Tzu-Ming Harry Hsu, Hang Qi, Matthew Brown, "Measuring the Effects of Non-Identical
      Data Distribution for Federated Visual Classification", arXiv:1909.06335 (2019).
    * FedAdagrad / FedAdam / FedYogi: Sashank J. Reddi, Zachary Charles, Manzil Zaheer, Zachary
      Garrett, Keith Rush, Jakub Konečný, Sanjiv Kumar, H. Brendan McMahan, "Adaptive Federated
      Optimization", ICLR 2021, arXiv:2003.00295 (Algorithm 2).

Clients run plain local training; the aggregated update ``delta`` (the mean of ``w_i - w``, or
whatever the ``aggregator`` returns) is treated as a pseudo-gradient by a server optimizer. The
optimizers themselves are :class:`~fedloom.core.server_opt.ServerOpt` pairs of pure ``init`` /
``update`` functions over typed state (after optax), in :mod:`fedloom.strategies.server_opts`;
:class:`~fedloom.strategies.fedavg.FedAvg` applies whichever it is given as ``server_opt`` and keeps
its state (e.g. ``AdaptiveState(m, v)``, ``MomentumState(trace)``, flat float64 vectors) in
``state.components["server_opt"]``, so checkpoints carry it and a resumed run continues exactly.
The classes here are named presets with the papers' hyperparameters:
``FedAdam(server_lr=0.01, ...)`` is ``FedAvg(server_opt=adam(lr=0.01, ...))``, bit for bit.

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

from fedloom.core.server_opt import ServerOpt
from fedloom.errors import ConfigError
from fedloom.strategies.fedavg import FedAvg
from fedloom.strategies.registry import STRATEGIES
from fedloom.strategies.server_opts import adagrad, adam, adaptive, momentum, yogi

if TYPE_CHECKING:
    from fedloom.strategies.options import StrategyOptions

__all__ = ["FedAvgM", "FedAdagrad", "FedAdam", "FedYogi", "FedOpt"]


def _own_server_opt(cls_name: str, kwargs: dict[str, Any]) -> None:
    if kwargs.get("server_opt") is not None:
        raise ConfigError(
            f"{cls_name} sets its own server optimizer; pass server_opt to FedAvg instead "
            "(e.g. FedAvg(server_opt=fedloom.strategies.adam(...)))"
        )
    kwargs.pop("server_opt", None)


class FedAvgM(FedAvg):
    """FedAvg with server momentum: ``v <- momentum * v + delta``; ``w <- w + server_lr * v``.

    The preset ``FedAvg(server_opt=momentum(server_lr, server_momentum))``.

    Args:
        server_lr: Server learning rate.
        server_momentum: Momentum coefficient in ``[0, 1)``; 0 gives FedAvg scaled by ``server_lr``.
        **kwargs: :class:`FedAvg` arguments (sampling, aggregator, configs, evaluation), except
            ``server_opt``.
    """

    def __init__(self, *, server_lr: float = 1.0, server_momentum: float = 0.9, **kwargs: Any) -> None:
        _own_server_opt(type(self).__name__, kwargs)
        super().__init__(**kwargs)
        self.server_opt = momentum(lr=server_lr, momentum=server_momentum)
        self.server_lr = server_lr
        self.server_momentum = server_momentum


class FedOpt(FedAvg):
    """Base of the adaptive server-optimizer presets; subclasses define :meth:`make_server_opt`.

    Args:
        server_lr: Server learning rate ``eta`` (default: :attr:`default_server_lr`, 0.01; 0.1 for
            FedAdagrad, whose denominator only grows).
        beta1: First-moment decay in ``[0, 1)``.
        beta2: Second-moment decay in ``[0, 1)`` (unused by FedAdagrad).
        tau: Adaptivity ``tau > 0``: larger is closer to FedAvgM.
        **kwargs: :class:`FedAvg` arguments, except ``server_opt``.
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
        _own_server_opt(type(self).__name__, kwargs)
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
        self.server_opt = self.make_server_opt()

    def make_server_opt(self) -> ServerOpt:
        """The server optimizer from the hyperparameters; called once, by the constructor.

        The default is :func:`~fedloom.strategies.server_opts.adaptive` with :meth:`second_moment`,
        so a subclass may define either.
        """
        return adaptive(self.server_lr, self.beta1, self.tau, self.second_moment)

    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The new ``v`` from the previous one and this round's update (for :meth:`make_server_opt`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(server_lr={self.server_lr}, beta1={self.beta1}, beta2={self.beta2}, "
            f"tau={self.tau}, aggregator={self.aggregator!r})"
        )


class FedAdagrad(FedOpt):
    """FedAdagrad: ``v <- v + delta^2`` (Reddi et al., 2021); the preset of :func:`adagrad`."""

    default_server_lr = 0.1

    def make_server_opt(self) -> ServerOpt:
        return adagrad(lr=self.server_lr, beta1=self.beta1, tau=self.tau)


class FedAdam(FedOpt):
    """FedAdam: ``v <- beta2 v + (1 - beta2) delta^2`` (Reddi et al., 2021); the preset of :func:`adam`."""

    def make_server_opt(self) -> ServerOpt:
        return adam(lr=self.server_lr, beta1=self.beta1, beta2=self.beta2, tau=self.tau)


class FedYogi(FedOpt):
    """FedYogi: ``v <- v - (1 - beta2) delta^2 sign(v - delta^2)`` (Reddi et al., 2021); the preset of
    :func:`yogi`."""

    def make_server_opt(self) -> ServerOpt:
        return yogi(lr=self.server_lr, beta1=self.beta1, beta2=self.beta2, tau=self.tau)


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
