"""Issue 10, finding 2: one client must not be able to seize or destroy the global model.

The attacker sends the largest float32 values (3e38) and claims 10**15 training examples. Before
the fix, FedAvg's global model became 3e38 (every honest update was then rejected as non-finite),
and FedAvgM's became inf, then NaN, and was checkpointed, so a retry could not recover.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedloom import simulate
from fedloom.core import Client, EvaluateRes, FitRes, Parameters
from fedloom.engine import FederatedLoop, load_checkpoint
from fedloom.errors import RoundFailedError
from fedloom.strategies import CoordinateMedian, FedAvg, FedAvgM

TARGET = np.linspace(-1.0, 1.0, 8).astype(np.float32)
INITIAL = Parameters({"w": np.zeros(8, np.float32)})
HUGE, CLAIMED = 3e38, 10**15
N_CLIENTS, ATTACKER = 5, "4"


class Honest(Client):
    """Moves half-way towards a fixed target; reports 10 examples."""

    def get_parameters(self, config):
        return INITIAL

    def fit(self, parameters, config):
        w = parameters["w"]
        return FitRes(Parameters({"w": (w + 0.5 * (TARGET - w)).astype(np.float32)}), 10)

    def evaluate(self, parameters, config):
        return EvaluateRes(float(np.sum((parameters["w"] - TARGET) ** 2)), 10)


class Seizer(Honest):
    """Sends 3e38 everywhere and claims 10**15 examples, in every round listed (all by default)."""

    def __init__(self, rounds: set[int] | None = None) -> None:
        self.rounds = rounds

    def fit(self, parameters, config):
        if self.rounds is not None and int(config.get("round", 0)) not in self.rounds:
            return super().fit(parameters, config)
        return FitRes(Parameters({"w": np.full(8, HUGE, np.float32)}), CLAIMED)


def _clients(attacker: Client):
    return lambda cid: attacker if cid == ATTACKER else Honest()


class _Models:
    """Round observer: the global model after every round."""

    def __init__(self) -> None:
        self.models: list[np.ndarray] = []

    def on_round_end(self, record, state) -> None:
        self.models.append(state.parameters["w"].copy())


@pytest.mark.parametrize("strategy_cls", [FedAvg, FedAvgM])
def test_a_3e38_client_claiming_1e15_examples_cannot_seize_or_destroy_the_model(strategy_cls, tmp_path: Path) -> None:
    ckpt, seen = tmp_path / "ckpt.safetensors", _Models()
    result = simulate(_clients(Seizer()), num_clients=N_CLIENTS, strategy=strategy_cls(), rounds=6,
                      initial_parameters=INITIAL, checkpoint_path=ckpt, observers=[seen])
    assert len(result.history) == 6
    # every round's model is finite, and one round moves it by a bounded amount, not to the attacker's 3e38:
    # weight <= 10 x median, norm <= 10 x median: at most (10 * 10 + 4) / (10 + 4) median honest updates
    honest_step = float(np.linalg.norm(0.5 * TARGET))
    assert all(np.isfinite(w).all() for w in seen.models)
    assert np.linalg.norm(seen.models[0]) <= 104 / 14 * honest_step + 1e-3
    # honest updates are never rejected: every round aggregates all five results
    assert all(h.metrics["fit_clients"] == N_CLIENTS and h.metrics["fit_failures"] == 0 for h in result.history)
    assert all(h.metrics["fit_norm_bounded"] == 1 for h in result.history)  # the attacker, every round
    stored, _ = load_checkpoint(ckpt)
    assert np.isfinite(stored.parameters["w"]).all() and stored.round == 6


@pytest.mark.parametrize("strategy_cls", [FedAvg, FedAvgM])
def test_with_a_robust_aggregator_the_attacker_is_ignored(strategy_cls) -> None:
    """The mean stays a mean: bounded, a persistent attacker can still drag it (docs/strategies.md). A
    robust aggregator removes it; the weight cap does not matter to the median, which ignores weights."""
    result = simulate(_clients(Seizer()), num_clients=N_CLIENTS, strategy=strategy_cls(aggregator=CoordinateMedian()),
                      rounds=6, initial_parameters=INITIAL)
    assert np.abs(result.parameters["w"] - TARGET).max() < 0.1


@pytest.mark.parametrize("strategy_cls", [FedAvg, FedAvgM])
def test_without_the_caps_the_global_check_fails_the_round_and_keeps_the_previous_state(
    strategy_cls, tmp_path: Path
) -> None:
    """Caps off: the aggregate is non-finite (FedAvgM) or moved absurdly far (FedAvg); the round fails with
    a clear reason, the state object is left as it was and the checkpoint holds the previous round,
    so a retry from it (what ``fedloom server`` does) continues once the attacker is gone."""
    ckpt = tmp_path / "ckpt.safetensors"
    uncapped = {"max_weight_ratio": 0.0, "max_norm_ratio": 0.0}
    loop = FederatedLoop(strategy_cls(**uncapped), _pool(_clients(Seizer(rounds={3}))), num_rounds=5,
                         checkpoint_path=ckpt)
    with pytest.raises(RoundFailedError, match=r"round 3: the new global model (is not finite|moved)"):
        loop.run(INITIAL)
    state, history = loop.resume_state()  # what the deployment server retries from
    assert state.round == 2 and len(history) == 2 and np.isfinite(state.parameters["w"]).all()

    # the state object passed to run() is not mutated by the failed round either
    loop2 = FederatedLoop(strategy_cls(**uncapped), _pool(_clients(Seizer(rounds={3}))), num_rounds=5)
    kept, _ = loop.resume_state()
    before = kept.parameters
    with pytest.raises(RoundFailedError):
        loop2.run(state=kept)
    assert kept.round == 2 and kept.parameters is before

    # the retry: the attacker has left, the run finishes from the checkpoint with a finite model
    retry = FederatedLoop(strategy_cls(**uncapped), _pool(_clients(Honest())), num_rounds=5, checkpoint_path=ckpt)
    resumed = retry.resume_state()
    assert resumed is not None
    result = retry.run(state=resumed[0], history=resumed[1])
    assert [h.round for h in result.history] == [1, 2, 3, 4, 5]
    assert np.isfinite(result.parameters["w"]).all() and np.abs(result.parameters["w"]).max() < 10.0


def _pool(client_fn):
    from fedloom.backends import make_pool

    return make_pool("inline", client_fn, N_CLIENTS)
