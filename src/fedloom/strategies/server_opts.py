"""The server optimizers: SGD, momentum (FedAvgM) and the adaptive FedOpt family.

Each is a :class:`~fedloom.core.server_opt.ServerOpt` (pure ``init``/``update`` over a typed,
float64 state, after optax) that turns the aggregated client update ``delta`` into the step added
to the global model. :class:`~fedloom.strategies.FedAvg` takes one as ``server_opt``; FedAvgM,
FedAdagrad, FedAdam and FedYogi are FedAvg with these presets.

Papers:
    * FedAvgM (:func:`momentum`): Tzu-Ming Harry Hsu, Hang Qi, Matthew Brown, "Measuring the
      Effects of Non-Identical Data Distribution for Federated Visual Classification",
      arXiv:1909.06335 (2019).
    * FedAdagrad / FedAdam / FedYogi (:func:`adagrad`, :func:`adam`, :func:`yogi`): Sashank J.
      Reddi, Zachary Charles, Manzil Zaheer, Zachary Garrett, Keith Rush, Jakub Konečný, Sanjiv
      Kumar, H. Brendan McMahan, "Adaptive Federated Optimization", ICLR 2021, arXiv:2003.00295
      (Algorithm 2).

The adaptive rules follow Algorithm 2 of Reddi et al.: ``m <- b1 m + (1 - b1) delta``, then

* Adagrad: ``v <- v + delta^2``
* Adam:    ``v <- b2 v + (1 - b2) delta^2``
* Yogi:    ``v <- v - (1 - b2) delta^2 sign(v - delta^2)``

and ``step = lr * m / (sqrt(v) + tau)``, with ``m = 0`` and ``v = tau^2`` initially and no bias
correction.

Example:
    >>> import numpy as np
    >>> opt = momentum(lr=1.0, momentum=0.5)
    >>> state = opt.init(np.zeros(2))
    >>> step, state = opt.update(np.array([1.0, 2.0]), state)
    >>> step, state = opt.update(np.array([1.0, 2.0]), state)
    >>> step.tolist(), state.trace.tolist()
    ([1.5, 3.0], [1.5, 3.0])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fedloom.core.server_opt import ServerOpt
from fedloom.errors import ConfigError
from fedloom.strategies.registry import SERVER_OPTS

__all__ = [
    "EmptyState",
    "MomentumState",
    "AdaptiveState",
    "SecondMoment",
    "sgd",
    "momentum",
    "adaptive",
    "adagrad",
    "adam",
    "yogi",
]


class EmptyState(NamedTuple):
    """The state of a stateless optimizer (:func:`sgd`)."""


class MomentumState(NamedTuple):
    """The state of :func:`momentum`.

    Attributes:
        trace: The velocity ``v`` (flat, float64), zero before the first round.
    """

    trace: np.ndarray


class AdaptiveState(NamedTuple):
    """The state of :func:`adagrad`, :func:`adam` and :func:`yogi` (and :func:`adaptive`).

    Attributes:
        m: First moment (flat, float64), zero before the first round.
        v: Second moment (flat, float64), ``tau^2`` before the first round.
    """

    m: np.ndarray
    v: np.ndarray


SecondMoment = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(v, delta) -> new v``: the second-moment rule of an adaptive optimizer."""


def _check_lr(lr: float) -> None:
    if not lr > 0:
        raise ConfigError(f"server_lr must be > 0, got {lr}")


def _check_decay(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value}")


def _check_tau(tau: float) -> None:
    if not tau > 0:
        raise ConfigError(f"tau must be > 0, got {tau}")


def sgd(lr: float = 1.0) -> ServerOpt:
    """Plain server SGD: ``step = lr * delta``; ``sgd(1.0)`` is FedAvg exactly (``1.0 * x == x``).

    Args:
        lr: Server learning rate, ``> 0``.

    Raises:
        ConfigError: ``lr <= 0``.

    Example:
        >>> import numpy as np
        >>> opt = sgd(0.5)
        >>> opt.update(np.array([2.0, -4.0]), opt.init(np.zeros(2)))[0].tolist()
        [1.0, -2.0]
    """
    _check_lr(lr)

    def init(params_vector: np.ndarray) -> EmptyState:
        return EmptyState()

    def update(delta: np.ndarray, state: EmptyState) -> tuple[np.ndarray, EmptyState]:
        return lr * delta, state

    return ServerOpt(init, update)


def momentum(lr: float = 1.0, momentum: float = 0.9) -> ServerOpt:
    """Server momentum (FedAvgM, Hsu et al. 2019): ``v <- momentum * v + delta``; ``step = lr * v``.

    Args:
        lr: Server learning rate, ``> 0``.
        momentum: Momentum coefficient in ``[0, 1)``; 0 gives :func:`sgd`.

    Raises:
        ConfigError: a hyperparameter is out of range.

    Example:
        >>> import numpy as np
        >>> opt = momentum(lr=0.5, momentum=0.9)
        >>> step, state = opt.update(np.array([2.0, 4.0]), opt.init(np.zeros(2)))
        >>> step.tolist(), state.trace.tolist()
        ([1.0, 2.0], [2.0, 4.0])
    """
    _check_lr(lr)
    _check_decay("server_momentum", momentum)
    beta = momentum

    def init(params_vector: np.ndarray) -> MomentumState:
        return MomentumState(trace=np.zeros(np.shape(params_vector), np.float64))

    def update(delta: np.ndarray, state: MomentumState) -> tuple[np.ndarray, MomentumState]:
        velocity = beta * state.trace + delta
        return lr * velocity, MomentumState(trace=velocity)

    return ServerOpt(init, update)


def adaptive(lr: float, beta1: float, tau: float, second_moment: SecondMoment) -> ServerOpt:
    """An adaptive optimizer of Reddi et al.'s Algorithm 2 with the given second-moment rule.

    ``m <- beta1 m + (1 - beta1) delta``, ``v <- second_moment(v, delta)``,
    ``step = lr * m / (sqrt(v) + tau)``, from ``m = 0``, ``v = tau^2``, without bias correction.
    :func:`adagrad`, :func:`adam` and :func:`yogi` are this with their rules.

    Args:
        lr: Server learning rate ``eta > 0``.
        beta1: First-moment decay in ``[0, 1)``.
        tau: Adaptivity ``tau > 0``.
        second_moment: ``(v, delta) -> new v``; must not modify its arguments.

    Raises:
        ConfigError: a hyperparameter is out of range.

    Example:
        >>> import numpy as np
        >>> opt = adaptive(1.0, 0.0, 1.5, lambda v, delta: v + delta**2)  # Adagrad without momentum
        >>> opt.update(np.array([2.0]), opt.init(np.zeros(1)))[0].tolist()  # 2 / (sqrt(2.25 + 4) + 1.5)
        [0.5]
    """
    _check_lr(lr)
    _check_decay("beta1", beta1)
    _check_tau(tau)

    def init(params_vector: np.ndarray) -> AdaptiveState:
        shape = np.shape(params_vector)
        return AdaptiveState(m=np.zeros(shape, np.float64), v=np.full(shape, tau**2, np.float64))

    def update(delta: np.ndarray, state: AdaptiveState) -> tuple[np.ndarray, AdaptiveState]:
        m = beta1 * state.m + (1.0 - beta1) * delta
        v = second_moment(state.v, delta)
        return lr * m / (np.sqrt(v) + tau), AdaptiveState(m=m, v=v)

    return ServerOpt(init, update)


def adagrad(lr: float = 0.1, beta1: float = 0.9, tau: float = 1e-3) -> ServerOpt:
    """FedAdagrad's server optimizer: ``v <- v + delta^2`` (Reddi et al., 2021).

    Args:
        lr: Server learning rate ``> 0`` (default 0.1: the denominator only grows).
        beta1: First-moment decay in ``[0, 1)``.
        tau: Adaptivity ``tau > 0``.

    Example:
        >>> import numpy as np
        >>> opt = adagrad(lr=0.1, beta1=0.9, tau=0.5)
        >>> step, state = opt.update(np.array([2.0, 0.0]), opt.init(np.zeros(2)))
        >>> state.v.tolist()  # 0.5^2 + delta^2
        [4.25, 0.25]
    """

    def second_moment(v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return v + delta**2

    return adaptive(lr, beta1, tau, second_moment)


def adam(lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3) -> ServerOpt:
    """FedAdam's server optimizer: ``v <- beta2 v + (1 - beta2) delta^2`` (Reddi et al., 2021).

    Args:
        lr: Server learning rate ``> 0``.
        beta1: First-moment decay in ``[0, 1)``.
        beta2: Second-moment decay in ``[0, 1)``.
        tau: Adaptivity ``tau > 0``: larger is closer to momentum SGD.

    Example:
        >>> import numpy as np
        >>> opt = adam(lr=0.5, beta1=0.5, beta2=0.5, tau=1.0)
        >>> step, state = opt.update(np.array([1.0, 7.0]), opt.init(np.zeros(2)))
        >>> state.m.tolist(), state.v.tolist()  # m = delta / 2; v = (1 + delta^2) / 2
        ([0.5, 3.5], [1.0, 25.0])
    """
    _check_lr(lr)
    _check_decay("beta1", beta1)
    _check_decay("beta2", beta2)

    def second_moment(v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return beta2 * v + (1.0 - beta2) * delta**2

    return adaptive(lr, beta1, tau, second_moment)


def yogi(lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3) -> ServerOpt:
    """FedYogi's server optimizer: ``v <- v - (1 - beta2) delta^2 sign(v - delta^2)`` (Reddi et al.).

    Args:
        lr: Server learning rate ``> 0``.
        beta1: First-moment decay in ``[0, 1)``.
        beta2: Second-moment decay in ``[0, 1)``.
        tau: Adaptivity ``tau > 0``.

    Example:
        >>> import numpy as np
        >>> opt = yogi(lr=0.1, beta1=0.9, beta2=0.5, tau=0.5)
        >>> step, state = opt.update(np.array([2.0, 0.5]), opt.init(np.zeros(2)))
        >>> state.v.tolist()  # 0.25 + 0.5 * 4 (v < delta^2); 0.25 (v == delta^2)
        [2.25, 0.25]
    """
    _check_lr(lr)
    _check_decay("beta1", beta1)
    _check_decay("beta2", beta2)

    def second_moment(v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        d2 = delta**2
        return v - (1.0 - beta2) * d2 * np.sign(v - d2)

    return adaptive(lr, beta1, tau, second_moment)


# -- the registry of ``--server-opt`` names: each reads its hyperparameters from the algorithm options
SERVER_OPTS.register("sgd", lambda o: sgd(o.server_lr or 1.0), help="w += lr * delta (FedAvg with a server step).")
SERVER_OPTS.register("momentum", lambda o: momentum(o.server_lr or 1.0, o.server_momentum),
                     help="Server momentum, --server-momentum (FedAvgM).")
SERVER_OPTS.register("adagrad", lambda o: adagrad(o.server_lr or 0.1, o.beta1, o.tau), help="Adagrad (FedAdagrad).")
SERVER_OPTS.register("adam", lambda o: adam(o.server_lr or 0.01, o.beta1, o.beta2, o.tau), help="Adam (FedAdam).")
SERVER_OPTS.register("yogi", lambda o: yogi(o.server_lr or 0.01, o.beta1, o.beta2, o.tau), help="Yogi (FedYogi).")
