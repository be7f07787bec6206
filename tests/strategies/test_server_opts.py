"""Server optimizers as init/update pairs: hand-computed steps and states, chain, and the presets.

Every number below is exact in binary floating point (or written as the expression it is), so the
assertions use ``==``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedloom.core.parameters import Parameters
from fedloom.core.server_opt import apply_step
from fedloom.core.strategy import ServerState
from fedloom.errors import ConfigError
from fedloom.strategies import (
    ServerOpt,
    adagrad,
    adam,
    chain,
    momentum,
    sgd,
    yogi,
)
from fedloom.strategies.server_opts import AdaptiveState, EmptyState, MomentumState


def _run(opt: ServerOpt, deltas: list[list[float]]):  # noqa: ANN202
    state = opt.init(np.zeros(2))
    steps = []
    for delta in deltas:
        step, state = opt.update(np.array(delta), state)
        steps.append(step.tolist())
    return steps, state


def test_sgd_scales_and_keeps_no_state() -> None:
    opt = sgd(0.5)
    assert opt.init(np.zeros(2)) == EmptyState()
    steps, state = _run(opt, [[2.0, -4.0]])
    assert steps == [[1.0, -2.0]] and state == EmptyState()


def test_sgd_of_one_returns_the_update_bit_for_bit() -> None:
    delta = np.array([0.1, -0.0, 1e-310, np.pi])
    step, _ = sgd(1.0).update(delta, EmptyState())
    assert step.tobytes() == delta.tobytes()


def test_momentum_by_hand() -> None:
    # v1 = [2, 4], step 0.25 v1 = [0.5, 1]; v2 = 0.5 v1 + [1, -1] = [2, 1], step [0.5, 0.25]
    opt = momentum(lr=0.25, momentum=0.5)
    init = opt.init(np.ones(2))
    assert isinstance(init, MomentumState) and init.trace.tolist() == [0.0, 0.0] and init.trace.dtype == np.float64
    steps, state = _run(opt, [[2.0, 4.0], [1.0, -1.0]])
    assert steps == [[0.5, 1.0], [0.5, 0.25]]
    assert state.trace.tolist() == [2.0, 1.0]


def test_adagrad_by_hand() -> None:
    # tau = 1.5: v0 = 2.25. Round 1, delta [2, 0]: m = [1, 0], v = [6.25, 2.25], step = 0.5 m / (sqrt v + 1.5)
    # = [0.125, 0]. Round 2, delta [0, 2]: m = [0.5, 1], v = [6.25, 6.25], step = 0.5 m / 4 = [0.0625, 0.125].
    opt = adagrad(lr=0.5, beta1=0.5, tau=1.5)
    init = opt.init(np.zeros(2))
    assert isinstance(init, AdaptiveState) and init.m.tolist() == [0.0, 0.0] and init.v.tolist() == [2.25, 2.25]
    steps, state = _run(opt, [[2.0, 0.0], [0.0, 2.0]])
    assert steps == [[0.125, 0.0], [0.0625, 0.125]]
    assert state.m.tolist() == [0.5, 1.0] and state.v.tolist() == [6.25, 6.25]


def test_adam_by_hand() -> None:
    # tau = 1: v0 = 1; delta [1, 7]: m = 0.5 delta = [0.5, 3.5]; v = 0.5 v0 + 0.5 delta^2 = [1, 25];
    # step = 0.5 m / (sqrt v + 1) = [0.125, 1.75 / 6]
    steps, state = _run(adam(lr=0.5, beta1=0.5, beta2=0.5, tau=1.0), [[1.0, 7.0]])
    assert steps == [[0.125, 1.75 / 6.0]]
    assert state.m.tolist() == [0.5, 3.5] and state.v.tolist() == [1.0, 25.0]


def test_yogi_by_hand() -> None:
    # tau = 1: v0 = 1. Round 1, delta [1, 4]: sign(v - d^2) = [0, -1], v = [1, 1 + 0.5 * 16] = [1, 9];
    # m = [0.5, 2]; step = 0.5 m / (sqrt v + 1) = [0.125, 0.25]. Round 2, delta [0, 2]: sign = [1, 1],
    # v = [1, 9 - 0.5 * 4] = [1, 7] (Yogi's v can shrink); m = [0.25, 2].
    steps, state = _run(yogi(lr=0.5, beta1=0.5, beta2=0.5, tau=1.0), [[1.0, 4.0], [0.0, 2.0]])
    assert steps[0] == [0.125, 0.25]
    assert steps[1] == [0.5 * 0.25 / 2.0, 0.5 * 2.0 / (math.sqrt(7.0) + 1.0)]
    assert state.m.tolist() == [0.25, 2.0] and state.v.tolist() == [1.0, 7.0]


@pytest.mark.parametrize(
    "opt", [sgd(0.5), momentum(), adagrad(), adam(), yogi()], ids=["sgd", "momentum", "adagrad", "adam", "yogi"]
)
def test_update_is_pure(opt: ServerOpt) -> None:
    state = opt.init(np.zeros(3))
    before = [np.array(a, copy=True) for a in state]
    delta = np.array([1.0, -2.0, 3.0])
    opt.update(delta, state)
    opt.update(delta, state)
    assert delta.tolist() == [1.0, -2.0, 3.0]
    assert all(np.array_equal(a, b) for a, b in zip(state, before, strict=True))
    # the same inputs give the same outputs: no hidden state
    (s1, n1), (s2, n2) = opt.update(delta, state), opt.update(delta, state)
    assert s1.tobytes() == s2.tobytes() and all(np.array_equal(a, b) for a, b in zip(n1, n2, strict=True))


def test_chain_feeds_each_step_to_the_next() -> None:
    # sgd(2) doubles; momentum(1, 0.5): v1 = [2, 4]; v2 = 0.5 [2, 4] + [2, 0] = [3, 2]
    opt = chain(sgd(2.0), momentum(lr=1.0, momentum=0.5))
    state = opt.init(np.zeros(2))
    assert state[0] == EmptyState() and isinstance(state[1], MomentumState)
    steps, state = _run(opt, [[1.0, 2.0], [1.0, 0.0]])
    assert steps == [[2.0, 4.0], [3.0, 2.0]]
    assert state[1].trace.tolist() == [3.0, 2.0]


def test_empty_chain_is_the_identity_and_chain_checks_its_arguments() -> None:
    steps, state = _run(chain(), [[1.5, -2.0]])
    assert steps == [[1.5, -2.0]] and state == ()
    with pytest.raises(TypeError, match="ServerOpt"):
        chain(sgd(), "adam")  # type: ignore[arg-type]


def test_apply_step_adds_in_the_flat_view_and_keeps_dtypes() -> None:
    state = ServerState(Parameters({"w": np.array([1.0, 2.0], np.float32), "n": np.array(3, np.int64)}))
    apply_step(state, np.array([0.5, -1.0, 1.6]))
    assert state.parameters["w"].tolist() == [1.5, 1.0] and state.parameters["w"].dtype == np.float32
    assert int(state.parameters["n"]) == 5 and state.parameters["n"].shape == ()


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: sgd(0.0), "server_lr must be > 0, got 0.0"),
        (lambda: momentum(lr=-1.0), "server_lr must be > 0, got -1.0"),
        (lambda: momentum(momentum=1.0), r"server_momentum must be in \[0, 1\), got 1.0"),
        (lambda: adagrad(beta1=-0.1), r"beta1 must be in \[0, 1\), got -0.1"),
        (lambda: adam(beta2=1.0), r"beta2 must be in \[0, 1\), got 1.0"),
        (lambda: yogi(tau=0.0), "tau must be > 0, got 0.0"),
    ],
)
def test_invalid_hyperparameters(factory, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=message):
        factory()
