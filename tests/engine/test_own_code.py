"""Issue 20, "What was hit": each call that failed for a user bringing their own code now works, or
fails with a message that says what to do."""

from __future__ import annotations

import logging
import textwrap
from collections import OrderedDict

import numpy as np
import pytest
import torch

from fedloom import simulate
from fedloom.app.build import run_simulation
from fedloom.app.config import RunConfig
from fedloom.core import Client, EvaluateRes, FitRes, Parameters
from fedloom.core.registry import load_object
from fedloom.engine import FederatedLoop
from fedloom.errors import ConfigError, RoundFailedError
from fedloom.strategies import FedAvg

INITIAL = Parameters({"w": np.zeros(2, np.float32), "b": np.zeros(1, np.float32)})


class Returns(Client):
    """A client whose fit returns ``fit_result(parameters)`` and whose evaluate returns ``eval_result``."""

    def __init__(self, fit_result=None, eval_result=None) -> None:  # noqa: ANN001
        self.fit_result, self.eval_result = fit_result, eval_result

    def get_parameters(self, config):  # noqa: ANN001, ANN201
        return INITIAL

    def fit(self, parameters, config):  # noqa: ANN001, ANN201
        return self.fit_result(parameters, config)

    def evaluate(self, parameters, config):  # noqa: ANN001, ANN201
        return self.eval_result if self.eval_result is not None else EvaluateRes(0.5, 4, {"accuracy": 0.5})


def _run(client: Client, rounds: int = 1, **strategy):  # noqa: ANN003, ANN202
    return simulate(lambda cid: client, num_clients=2, rounds=rounds, initial_parameters=INITIAL,
                    strategy=FedAvg(**strategy))


# -- the client contract ------------------------------------------------------------------------
def test_fit_may_return_a_state_dict_of_tensors():
    # was: AttributeError: 'collections.OrderedDict' object has no attribute 'nbytes' (the whole run crashed)
    state = OrderedDict(w=torch.ones(2), b=torch.full((1,), 2.0))
    result = _run(Returns(lambda p, c: FitRes(state, 3)))  # type: ignore[arg-type]
    assert result.parameters["w"].tolist() == [1.0, 1.0] and result.parameters["b"].tolist() == [2.0]


def test_fit_may_return_flowers_tuple_of_a_list_of_arrays():
    result = _run(Returns(lambda p, c: ([np.ones(2, np.float32), np.ones(1, np.float32)], 3, {"note": "x"})))
    assert result.parameters["w"].tolist() == [1.0, 1.0]
    assert result.history[0].metrics["fit_clients"] == 2


def test_a_wrong_return_is_that_clients_failure_saying_what_was_expected():
    with pytest.raises(RoundFailedError) as err:
        _run(Returns(lambda p, c: ([np.ones(2, np.float32)], 3, {})))
    assert "got a list of 1 arrays, expected 2 in the global model's order (w, b)" in str(err.value)
    with pytest.raises(RoundFailedError, match="fit returned str; expected FitRes"):
        _run(Returns(lambda p, c: "done"))


def test_a_failing_fit_names_the_exception_type_and_the_round_error_names_the_first_reasons(caplog):
    # was: "client 0 failed in fit: 'lr'", then "round 1: 0 valid results, 1 needed (3 failures)"
    def needs_lr(parameters, config):  # noqa: ANN001, ANN202
        return FitRes(parameters, 1) if config["lr"] else None

    with caplog.at_level(logging.WARNING), pytest.raises(RoundFailedError) as err:
        _run(Returns(needs_lr))
    assert "client 0 failed in fit: KeyError: 'lr'" in caplog.text
    assert str(err.value) == ("round 1: 0 valid results, 1 needed (2 failures: client 0: KeyError: 'lr'; "
                              "client 1: KeyError: 'lr')")


# -- evaluation -------------------------------------------------------------------------------
def _echo(parameters, config):  # noqa: ANN001, ANN202
    return FitRes(Parameters({k: v + 1 for k, v in parameters.items()}), 2)


def test_flower_style_evaluate_fn_with_the_round_returning_a_dict_and_a_string_metric():
    # was: TypeError (evaluate_fn took parameters only), then AttributeError on a dict
    seen = []

    def evaluate_fn(server_round, parameters):  # noqa: ANN001, ANN202
        seen.append((server_round, float(parameters["w"][0])))
        return {"loss": 1.0 / (server_round + 1), "accuracy": 0.25 * server_round, "phase": f"r{server_round}"}

    result = _run(Returns(_echo), rounds=2, evaluate_fn=evaluate_fn)
    assert seen == [(0, 0.0), (1, 1.0), (2, 2.0)]  # round 0: the initial model
    assert result.initial is not None and result.initial.metrics == {"loss": 1.0, "accuracy": 0.0}
    assert result.history[1].metrics["accuracy"] == 0.5 and result.history[1].text == {"phase": "r2"}
    assert result.history[1].as_dict()["phase"] == "r2"


def test_the_old_evaluate_fn_form_keeps_working():
    result = _run(Returns(_echo), evaluate_fn=lambda parameters: EvaluateRes(float(parameters["w"][0]), 1))
    assert result.history[0].metrics["loss"] == 1.0 and result.initial.metrics["loss"] == 0.0


def test_fedavg_evaluates_every_client_by_default_with_evaluate_config_fn_and_counts_failures():
    asked = []

    class Half(Returns):
        def evaluate(self, parameters, config):  # noqa: ANN001, ANN201
            asked.append(dict(config))
            if len(asked) % 2 == 0:
                raise ValueError("no test data")
            return 0.5, 4, {"accuracy": 0.5}  # Flower's tuple

    strategy = FedAvg(evaluate_config_fn=lambda rnd: {"batches": rnd})
    assert strategy.fraction_evaluate == 1.0  # was 0.0 (Flower: 1.0)
    result = simulate(lambda cid: Half(_echo), num_clients=2, rounds=1, initial_parameters=INITIAL, strategy=strategy)
    fed = {k: v for k, v in result.history[0].metrics.items() if k.startswith("fed_")}
    assert fed == {"fed_clients": 1, "fed_failures": 1, "fed_loss": 0.5, "fed_accuracy": 0.5}
    assert [c["batches"] for c in asked] == [1, 1]


def test_a_run_that_evaluates_nothing_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        _run(Returns(_echo), fraction_evaluate=0.0)
    assert "nothing was evaluated in this run" in caplog.text


def test_fit_metrics_aggregation_fn_can_keep_string_metrics():
    client = Returns(lambda p, c: (p, 1, {"device": "cpu"}))
    result = _run(client, fit_metrics_aggregation_fn=lambda pairs: {"devices": ",".join(m["device"] for _, m in pairs)})
    assert result.history[0].text == {"train_devices": "cpu,cpu"}


# -- module:factory from the current directory ----------------------------------------------------
@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's folder with their own strategy, evaluation, client and observer, as the current directory."""
    (tmp_path / "mine_fl.py").write_text(textwrap.dedent('''
        import numpy as np
        from fedloom.core import Client, Parameters
        from fedloom.strategies import FedAvg

        class HalfStep(FedAvg):
            def __init__(self, *, note="half", **kwargs):
                super().__init__(**kwargs)
                self.note = note

        def evaluate_fn(server_round, parameters):
            return {"loss": float(np.abs(parameters["w"]).sum()), "who": "mine"}

        class Const(Client):
            def __init__(self, value): self.value = value
            def get_parameters(self, config): return Parameters({"w": np.zeros(3, np.float32)})
            def fit(self, parameters, config):
                return {"w": np.full(3, self.value, np.float32)}, 10, {}
            def evaluate(self, parameters, config): return 0.0, 1, {"accuracy": 1.0}

        def client_fn(cid, num_clients):
            return Const(float(cid) / num_clients)

        ROUNDS = []
        class Recorder:
            def on_round_end(self, record, state): ROUNDS.append(record.round)
    '''))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_run_loads_strategy_client_evaluation_and_observer_by_module_factory_from_cwd(project):
    cfg = RunConfig(dataset="iris", clients=4, rounds=2, progress=False, strategy="mine_fl:HalfStep",
                    client_fn="mine_fl:client_fn", central_eval="mine_fl:evaluate_fn", observers="mine_fl:Recorder")
    result = run_simulation(cfg)
    mine = load_object("mine_fl:ROUNDS")
    assert mine == [1, 2]
    # every client returns value cid/4 everywhere (equal example counts): the mean is 0.375
    assert result.parameters["w"].tolist() == [0.375] * 3
    assert result.history[-1].metrics["loss"] == pytest.approx(1.125) and result.history[-1].text == {"who": "mine"}
    assert result.initial is not None and result.initial.metrics["loss"] == 0.0


def test_central_eval_none_and_builtin(project):
    base = {"dataset": "iris", "clients": 3, "rounds": 1, "progress": False}
    off = run_simulation(RunConfig(**base, central_eval="none"))
    assert "loss" not in off.history[0].metrics and off.initial is None
    on = run_simulation(RunConfig(**base))
    assert "accuracy" in on.history[0].metrics


def test_a_missing_module_says_where_it_looked(project):
    with pytest.raises(ConfigError, match=r"cannot load strategy 'nope_fl:X': ModuleNotFoundError: .*looked in "):
        RunConfig(strategy="nope_fl:X").validate()
    with pytest.raises(ConfigError, match="module 'mine_fl' has no attribute 'Missing'"):
        RunConfig(strategy="mine_fl:Missing").validate()


def test_a_strategy_factory_that_is_not_a_strategy_is_refused(project):
    (project / "bad_fl.py").write_text("def make(**kw):\n    return 42\n")
    with pytest.raises(ConfigError, match="strategy 'bad_fl:make' made a int, not a fedloom Strategy"):
        run_simulation(RunConfig(dataset="iris", clients=2, rounds=1, progress=False, strategy="bad_fl:make"))


def test_round_loop_does_not_evaluate_round_zero_when_told_not_to():
    calls = []
    loop = FederatedLoop(FedAvg(evaluate_fn=lambda rnd, p: calls.append(rnd)), _pool(), num_rounds=1,
                         evaluate_initial=False)
    loop.run(INITIAL)
    assert calls == [1]


def _pool():  # noqa: ANN202
    from fedloom.backends import make_pool

    return make_pool("inline", lambda cid: Returns(_echo), 2)


def test_model_dataset_aggregator_and_initial_parameters_by_module_factory(project):
    (project / "parts_fl.py").write_text(textwrap.dedent('''
        import numpy as np
        import torch

        def blobs():
            rng = np.random.default_rng(0)
            y = np.repeat([0, 1], 60)
            return rng.normal(size=(120, 3)) + 3 * y[:, None], y, "classification", None

        def tiny(num_features, num_outputs):
            return torch.nn.Linear(num_features, num_outputs)

        def zeros():
            return {"weight": np.zeros((2, 3), np.float32), "bias": np.zeros(2, np.float32)}

        class FirstOnly:  # an aggregator: the first client's update
            def __call__(self, updates, weights):
                return updates[0]
    '''))
    cfg = RunConfig(dataset="parts_fl:blobs", model="parts_fl:tiny", aggregator="parts_fl:FirstOnly",
                    initial_parameters="parts_fl:zeros", clients=3, rounds=2, progress=False, partition="iid")
    result = run_simulation(cfg)
    assert result.initial is not None and result.initial.metrics["accuracy"] == 0.5  # zeros: one class
    assert result.history[-1].metrics["accuracy"] > 0.9
    assert result.parameters.names == ["weight", "bias"]
    from fedloom.app.build import build_simulation

    assert type(build_simulation(cfg).strategy.aggregator).__name__ == "FirstOnly"
