"""Server optimizers as pairs of pure functions over typed state, after optax's shape.

The model is `optax <https://github.com/google-deepmind/optax>`_'s ``GradientTransformation``: an
optimizer is ``init(params) -> state`` plus ``update(updates, state) -> (updates, state)``, both
pure, and optimizers compose with :func:`chain`. Here the input of ``update`` is the aggregated
client update ``delta`` (the mean of ``w_i - w``, or whatever the strategy's aggregator returns):
a pseudo-gradient that already points in the descent direction, so the returned step is *added* to
the global model (:func:`apply_step`), unlike optax, whose updates are negated gradients by
convention of the final ``scale(-lr)``.

The state is a ``NamedTuple`` (or frozen dataclass) of float64 arrays and scalars; a strategy keeps
it in :attr:`ServerState.components <fedloom.core.strategy.ServerState.components>`, so checkpoints
carry it and a resumed run continues exactly. Nothing is mutated: ``update`` returns a new state.

Example:
    >>> import numpy as np
    >>> double = ServerOpt(init=lambda params: (), update=lambda delta, state: (2.0 * delta, state))
    >>> state = double.init(np.zeros(2))
    >>> step, state = double.update(np.array([1.0, -0.5]), state)
    >>> step.tolist()
    [2.0, -1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from fedloom.core.strategy import ServerState

__all__ = ["ServerOpt", "chain", "apply_step"]


class ServerOpt(NamedTuple):
    """A server optimizer: two pure functions over a typed state.

    Attributes:
        init: ``init(params_vector) -> state``: the state before the first round, from the flat
            float64 vector of the global model (for shapes; it must not be kept by reference).
        update: ``update(delta, state) -> (step, new_state)``: the step to add to the flat global
            model for the aggregated update ``delta``, and the state for the next round. Must not
            modify ``delta`` or ``state`` in place.

    Example:
        >>> import numpy as np
        >>> half = ServerOpt(init=lambda params: (), update=lambda delta, state: (0.5 * delta, state))
        >>> half.update(np.array([4.0]), half.init(np.zeros(1)))[0].tolist()
        [2.0]
    """

    init: Callable[[np.ndarray], Any]
    update: Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]


def chain(*opts: ServerOpt) -> ServerOpt:
    """Compose optimizers like ``optax.chain``: each one's step is the next one's input.

    The state is a tuple with one entry per optimizer, in order. ``chain()`` is the identity.

    Args:
        *opts: The optimizers, applied first to last.

    Returns:
        One :class:`ServerOpt`.

    Example:
        >>> import numpy as np
        >>> double = ServerOpt(init=lambda params: (), update=lambda delta, state: (2.0 * delta, state))
        >>> plus_one = ServerOpt(init=lambda params: (), update=lambda delta, state: (delta + 1.0, state))
        >>> both = chain(double, plus_one)
        >>> both.update(np.array([1.0]), both.init(np.zeros(1)))[0].tolist()
        [3.0]
    """
    for opt in opts:
        if not isinstance(opt, ServerOpt):
            raise TypeError(f"chain takes ServerOpt instances, got {type(opt).__name__}")

    def init(params_vector: np.ndarray) -> tuple[Any, ...]:
        return tuple(opt.init(params_vector) for opt in opts)

    def update(delta: np.ndarray, state: tuple[Any, ...]) -> tuple[np.ndarray, tuple[Any, ...]]:
        if len(state) != len(opts):
            raise ValueError(f"chain of {len(opts)} optimizers got a state of {len(state)} entries")
        step = delta
        new_states = []
        for opt, inner in zip(opts, state, strict=True):
            step, inner = opt.update(step, inner)
            new_states.append(inner)
        return step, tuple(new_states)

    return ServerOpt(init, update)


def apply_step(state: ServerState, step: np.ndarray) -> None:
    """Add ``step`` to the global model: ``w <- w + step`` in the flat float64 view.

    Each entry keeps its dtype and shape (integer entries are rounded, see
    :meth:`~fedloom.core.parameters.Parameters.unflatten`).

    Example:
        >>> import numpy as np
        >>> from fedloom.core.parameters import Parameters
        >>> state = ServerState(Parameters({"w": np.array([1.0, 2.0])}))
        >>> apply_step(state, np.array([0.5, -1.0]))
        >>> state.parameters["w"].tolist()
        [1.5, 1.0]
    """
    state.parameters = state.parameters.unflatten(state.parameters.flatten() + step)
