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
from fedloom.core.types import FitRes
from fedloom.errors import ConfigError
from fedloom.strategies import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedYogi,
    Scaffold,
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


# -- composed into FedAvg ---------------------------------------------------------------------
def _rounds(strategy: FedAvg, rounds: int = 4) -> tuple[Parameters, object]:
    """A few rounds with clients whose models depend on the global one (so moments matter)."""
    glob = Parameters({"w": np.array([0.3, -1.2, 2.0], np.float32), "b": np.array(0.5)})
    state = strategy.initialize(glob, seed=1)
    for rnd in range(1, rounds + 1):
        tasks = strategy.configure_fit(state, rnd, ["0", "1", "2"])
        results = []
        for i, (cid, ins) in enumerate(tasks):
            w = ins.parameters["w"] * np.float32(0.9) + np.float32(0.1 * (i + 1) * rnd)
            b = ins.parameters["b"] - 0.05 * (i - 1) / rnd
            results.append((cid, FitRes(Parameters({"w": w, "b": b}), 10 * (i + 1))))
        strategy.aggregate_fit(state, rnd, results, [])
    return state.parameters, state.components["server_opt"]


def _same_bits(a: Parameters, b: Parameters) -> bool:
    return a.names == b.names and all(a[n].dtype == b[n].dtype and a[n].tobytes() == b[n].tobytes() for n in a)


@pytest.mark.parametrize(
    ("preset", "opt"),
    [
        (lambda: FedAdam(server_lr=0.05, beta1=0.8, beta2=0.95, tau=1e-2), lambda: adam(0.05, 0.8, 0.95, 1e-2)),
        (lambda: FedYogi(server_lr=0.05, beta1=0.8, beta2=0.95, tau=1e-2), lambda: yogi(0.05, 0.8, 0.95, 1e-2)),
        (lambda: FedAdagrad(server_lr=0.2, beta1=0.7, tau=1e-2), lambda: adagrad(0.2, 0.7, 1e-2)),
        (lambda: FedAvgM(server_lr=0.7, server_momentum=0.8), lambda: momentum(0.7, 0.8)),
        (lambda: FedAdam(), lambda: adam()),
        (lambda: FedAdagrad(), lambda: adagrad()),
        (lambda: Scaffold(server_lr=0.5), lambda: sgd(0.5)),
    ],
    ids=["adam", "yogi", "adagrad", "momentum", "adam-defaults", "adagrad-defaults", "scaffold-sgd"],
)
def test_fedavg_with_an_optimizer_equals_its_preset_bit_for_bit(preset, opt) -> None:  # noqa: ANN001
    preset_strategy = preset()
    if isinstance(preset_strategy, Scaffold):  # compare only the server step: SCAFFOLD needs delta_c results
        glob = Parameters({"w": np.array([1.0, 2.0])})
        a, b = preset_strategy.initialize(glob), FedAvg(server_opt=opt()).initialize(glob)
        preset_strategy.apply_update(a, 1, np.array([0.3, -0.7]))
        FedAvg(server_opt=opt()).apply_update(b, 1, np.array([0.3, -0.7]))
        assert _same_bits(a.parameters, b.parameters)
        return
    params_a, opt_a = _rounds(preset_strategy)
    params_b, opt_b = _rounds(FedAvg(server_opt=opt()))
    assert _same_bits(params_a, params_b)
    assert type(opt_a) is type(opt_b)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(opt_a, opt_b, strict=True))


def test_default_fedavg_adds_the_aggregate_exactly() -> None:
    # sgd(1.0) must be today's ``flatten() + delta``, to the bit
    glob = Parameters({"w": np.array([0.1, 0.2, 0.3])})
    strategy = FedAvg()
    state = strategy.initialize(glob)
    results = [("a", FitRes(Parameters({"w": np.array([0.7, -0.1, 1e-9])}), 3)),
               ("b", FitRes(Parameters({"w": np.array([0.35, 0.9, 0.3])}), 7))]
    strategy.aggregate_fit(state, 1, results, [])
    updates = [r.parameters.flatten() - glob.flatten() for _, r in results]
    delta = strategy.aggregator(updates, np.array([3.0, 7.0]))
    assert state.parameters["w"].tobytes() == (glob.flatten() + delta).tobytes()
    assert state.components == {"server_opt": EmptyState()}


def test_initialize_and_apply_update_keep_the_state_in_components() -> None:
    strategy = FedAvg(server_opt=momentum(lr=1.0, momentum=0.5))
    state = strategy.initialize(Parameters({"w": np.zeros(2)}))
    assert state.components["server_opt"].trace.tolist() == [0.0, 0.0]
    strategy.apply_update(state, 1, np.array([2.0, 4.0]))
    strategy.apply_update(state, 2, np.array([0.0, 0.0]))
    assert state.parameters["w"].tolist() == [3.0, 6.0]
    assert state.components["server_opt"].trace.tolist() == [1.0, 2.0]


def test_presets_keep_their_defaults_and_repr() -> None:
    assert FedAdam().server_lr == 0.01 and FedYogi().server_lr == 0.01 and FedAdagrad().server_lr == 0.1
    assert repr(FedAdam(server_lr=0.02)) == (
        "FedAdam(server_lr=0.02, beta1=0.9, beta2=0.99, tau=0.001, aggregator=WeightedMean())"
    )
    assert repr(FedAvgM(server_lr=0.5)) == "FedAvgM(fraction_fit=1.0, weighted=True, aggregator=WeightedMean())"
    assert repr(Scaffold()) == "Scaffold(server_lr=1.0, fraction_fit=1.0, aggregator=WeightedMean())"
    m = FedAvgM(server_lr=0.5, server_momentum=0.3)
    assert (m.server_lr, m.server_momentum) == (0.5, 0.3)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: FedAdam(server_opt=sgd()),
        lambda: FedAvgM(server_opt=sgd()),
        lambda: Scaffold(server_opt=sgd()),
        lambda: FedAvg(server_opt="adam"),
    ],
)
def test_server_opt_conflicts_and_wrong_types_are_config_errors(factory) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="server optimizer|server_opt"):
        factory()
