"""xgb-bagging and xgb-cyclic in simulation, booster validation, and the tree strategies' rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedloom.app.build import build_simulation, run_simulation
from fedloom.app.config import RunConfig
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.errors import ConfigError, ValidationError
from fedloom.trees import booster as bst

pytest.importorskip("xgboost")

BAGGING = {"dataset": "breast_cancer", "model": "xgboost", "clients": 3, "partition": "iid", "seed": 1,
           "xgb_max_depth": 3, "xgb_local_rounds": 2, "progress": False, "fraction_evaluate": 0.0}


def test_bagging_on_breast_cancer_reaches_auc_098() -> None:
    result = run_simulation(RunConfig(strategy="xgb-bagging", rounds=5, **BAGGING))
    assert result.final["auc"] >= 0.98
    assert result.history[-1].metrics["train_trees"] == 30  # 3 clients x 2 trees x 5 rounds


def test_cyclic_visits_clients_in_turn_and_learns() -> None:
    cfg = RunConfig(strategy="xgb-cyclic", rounds=6, **BAGGING)
    sim = build_simulation(cfg)
    state = sim.strategy.initialize(sim.initial_parameters)
    order = [sim.strategy.configure_fit(state, rnd, ["0", "1", "2"])[0][0] for rnd in range(1, 7)]
    assert order == ["0", "1", "2", "0", "1", "2"]
    result = run_simulation(cfg)
    assert result.history[-1].metrics["train_trees"] == 12
    assert result.final["auc"] >= 0.97


def _client_trees() -> tuple[object, np.ndarray]:
    sim = build_simulation(RunConfig(strategy="xgb-bagging", rounds=1, **BAGGING))
    res = sim.client_fn("0").fit_task(FitIns(sim.initial_parameters, {"xgb_mode": "boost", "seed": 0}))
    return sim, res.parameters[bst.BOOSTER]


def test_a_client_sends_only_its_new_trees_as_json_bytes() -> None:
    _, raw = _client_trees()
    assert raw.dtype == np.uint8
    model = bst.check_booster_json(raw, num_features=30, objective="binary:logistic")
    assert bst.num_trees(model) == 2


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda m: m["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"].__setitem__(0, 99), "feature 99"),
    (lambda m: m["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"].__setitem__(0, 0), "child"),
    (lambda m: m["learner"]["learner_model_param"].__setitem__("num_feature", "31"), "31 features"),
    (lambda m: m["learner"]["objective"].__setitem__("name", "reg:squarederror"), "objective"),
])
def test_a_malformed_booster_from_a_peer_is_refused_before_xgboost_sees_it(mutate, message) -> None:  # type: ignore[no-untyped-def]
    _, raw = _client_trees()
    model = json.loads(raw.tobytes())
    mutate(model)
    with pytest.raises(ValidationError, match=message):
        bst.check_booster_json(bst.to_array(model), num_features=30, objective="binary:logistic")
    with pytest.raises(ValidationError):
        bst.check_booster_json(np.frombuffer(b"\x80\x04pickle", dtype=np.uint8), num_features=30,
                               objective="binary:logistic")


def test_bagging_counts_a_bad_result_as_that_clients_failure() -> None:
    sim, raw = _client_trees()
    state = sim.strategy.initialize(sim.initial_parameters)
    good = sim.client_fn("1").fit_task(FitIns(sim.initial_parameters, {"xgb_mode": "boost", "seed": 0}))
    bad = type(good)(Parameters({bst.BOOSTER: np.frombuffer(b"{}", dtype=np.uint8)}), 10)
    metrics = sim.strategy.aggregate_fit(state, 1, [("0", good), ("1", bad)], [])
    assert metrics["fit_clients"] == 1 and metrics["fit_failures"] == 1
    assert bst.num_trees(json.loads(state.parameters[bst.BOOSTER].tobytes())) == 2


@pytest.mark.parametrize(("settings", "message"), [
    ({"model": "xgboost"}, "xgb-bagging, xgb-cyclic or xgb-histogram"),
    ({"strategy": "xgb-histogram"}, "use --model xgboost"),
    ({"model": "xgboost", "strategy": "xgb-bagging", "compression": "q8"}, "does not support --compression q8"),
    ({"model": "xgboost", "strategy": "xgb-histogram", "dataset": "wine"}, "multi-class"),
])
def test_tree_rules(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_simulation(RunConfig(progress=False, **{"dataset": "breast_cancer", **settings}))


def test_bagging_grows_one_tree_per_class_on_multiclass_data() -> None:
    result = run_simulation(RunConfig(strategy="xgb-bagging", rounds=3, **{**BAGGING, "dataset": "wine",
                                                                          "xgb_local_rounds": 1}))
    assert result.history[-1].metrics["train_trees"] == 3 * 3 * 3  # rounds x clients x classes
    assert result.final["accuracy"] >= 0.9


def _tiny_booster() -> dict:
    tree = {"left_children": [1, -1, -1], "right_children": [2, -1, -1], "split_indices": [0, 0, 0],
            "split_conditions": [0.5, 0.1, 0.2], "base_weights": [0.0, 0.1, 0.2], "default_left": [0, 0, 0], "id": 0,
            "parents": [2147483647, 0, 0], "loss_changes": [1.0, 0.0, 0.0], "sum_hessian": [2.0, 1.0, 1.0],
            "split_type": [0, 0, 0], "tree_param": {"num_nodes": "3"}}
    model = {"trees": [tree], "tree_info": [0], "iteration_indptr": [0, 1], "gbtree_model_param": {"num_trees": "1"}}
    return {"learner": {"objective": {"name": "binary:logistic"}, "learner_model_param": {"num_feature": "3"},
                        "gradient_booster": {"model": model}}}


def _model_of(booster: dict) -> dict:
    return booster["learner"]["gradient_booster"]["model"]


@pytest.mark.parametrize("raw", [
    b'{"learner": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested past the parser's recursion limit
    json.dumps(_tiny_booster()).replace("0.1,", "1" + "0" * 400 + ",", 1).encode(),  # an int no float can hold
])
def test_a_booster_that_breaks_the_json_parser_or_float_is_refused_not_raised(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        bst.check_booster_json(np.frombuffer(raw, dtype=np.uint8), num_features=3, objective="binary:logistic")


@pytest.mark.parametrize("mutate", [
    lambda m: _model_of(m).pop("gbtree_model_param"),
    lambda m: _model_of(m).__setitem__("iteration_indptr", ["a", "b"]),
    lambda m: _model_of(m).__setitem__("iteration_indptr", 5),
    lambda m: _model_of(m).__setitem__("iteration_indptr", [0, 7]),
    lambda m: _model_of(m).__setitem__("tree_info", ["x"]),
])
def test_a_booster_the_merge_cannot_use_is_refused_before_it(mutate) -> None:  # type: ignore[no-untyped-def]
    model = _tiny_booster()
    bst.append_trees(None, bst.check_booster_json(bst.to_array(model), num_features=3, objective="binary:logistic"))
    mutate(model)
    with pytest.raises(ValidationError):
        parsed = bst.check_booster_json(bst.to_array(model), num_features=3, objective="binary:logistic")
        bst.append_trees(None, parsed, scale=0.5)  # what the server does next with an accepted one


def test_finite_histograms_whose_sum_overflows_cannot_make_the_model_nan() -> None:
    from fedloom.core.types import FitRes
    from fedloom.trees import histogram as hg
    from fedloom.trees.client import TreeSpec
    from fedloom.trees.strategies import XGBHistogram, initial_parameters

    spec = TreeSpec("classification", 2, 2, hg.TreeParams(bins=4))
    strategy = XGBHistogram(spec)
    state = strategy.initialize(initial_parameters("xgb-histogram", spec), seed=0)
    sketch = np.ones((2, hg.SKETCH_CELLS + 2))
    strategy.aggregate_fit(state, 1, [("0", FitRes(Parameters({"sketch": sketch}), 1))], [])
    shape = (len(hg.open_nodes(state.parameters)), 2, 4, 2)
    honest = np.ones(shape)
    huge = np.full(shape, 1e308)  # finite, so each passes a finiteness check; two of them sum to inf
    results = [("0", FitRes(Parameters({"hist": honest}), 1)), ("1", FitRes(Parameters({"hist": huge}), 1)),
               ("2", FitRes(Parameters({"hist": huge.copy()}), 1))]
    with np.errstate(all="ignore"):
        metrics = strategy.aggregate_fit(state, 2, results, [])
    assert metrics["fit_failures"] == 2
    assert all(np.isfinite(v).all() for _, v in state.parameters.items())


def _first_tree(m: dict) -> dict:
    return _model_of(m)["trees"][0]


@pytest.mark.parametrize("mutate", [
    # a binary model has one output group: XGBoost loaded tree_info 5, predicted, then corrupted its heap (abort)
    lambda m: _model_of(m).__setitem__("tree_info", [5] * len(_model_of(m)["tree_info"])),
    # XGBoost refuses these at load time (XGBoostError): merged into the global booster, they broke every later load
    lambda m: _first_tree(m).__setitem__("parents", []),
    lambda m: _first_tree(m)["tree_param"].__setitem__("num_nodes", "100000"),
    lambda m: _first_tree(m).__setitem__("split_type", [1] * len(_first_tree(m)["split_type"])),  # categorical
])
def test_a_booster_xgboost_cannot_load_safely_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    _, raw = _client_trees()
    model = json.loads(raw.tobytes())
    mutate(model)
    with pytest.raises(ValidationError):
        bst.check_booster_json(bst.to_array(model), num_features=30, objective="binary:logistic")
