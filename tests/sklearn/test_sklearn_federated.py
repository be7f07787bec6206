"""scikit-learn estimators in simulation: accuracy, the global label set, what leaves a client, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedloom.app.build import build_simulation, run_simulation
from fedloom.app.config import RunConfig
from fedloom.core.types import FitIns
from fedloom.errors import ConfigError
from fedloom.sklearn.models import ModelSpec, SklearnModel

ROOT = Path(__file__).resolve().parents[2]


def test_logistic_on_breast_cancer_iid_ten_clients_reaches_095() -> None:
    result = run_simulation(RunConfig(dataset="breast_cancer", model="sklearn:logistic", clients=10, partition="iid",
                                      rounds=3, progress=False, fraction_evaluate=0.0))
    assert result.final["accuracy"] >= 0.95
    assert result.final["auc"] >= 0.98


@pytest.mark.parametrize(("model", "dataset", "rounds"), [("sklearn:sgd", "breast_cancer", 3),
                                                         ("sklearn:mlp", "breast_cancer", 5),
                                                         ("sklearn:ridge", "diabetes", 1),
                                                         ("sklearn:sgd-regressor", "diabetes", 3)])
def test_every_builtin_estimator_learns(model: str, dataset: str, rounds: int) -> None:
    result = run_simulation(RunConfig(dataset=dataset, model=model, clients=4, partition="iid", rounds=rounds,
                                      progress=False, fraction_evaluate=0.0))
    if dataset == "diabetes":  # standardized targets: a constant predictor's MSE is about 1
        assert result.final["loss"] < 0.7
    else:
        assert result.final["accuracy"] >= 0.9


def test_a_client_with_one_class_still_returns_the_full_label_set() -> None:
    """wine has three classes; partition shards=1 gives each client mostly one: every update has three rows,
    and with one solver iteration a round (local fits to convergence diverge under such skew) the federation
    learns all three classes."""
    cfg = RunConfig(dataset="wine", model="sklearn:logistic", clients=6, partition="shards", shards_per_client=1,
                    rounds=10, sklearn_max_iter=1, progress=False, fraction_evaluate=0.0)
    sim = build_simulation(cfg)
    seen = [len(np.unique(sim.dataset.y_train[s.train])) for s in sim.splits]
    assert min(seen) == 1  # the premise: some client sees a single class
    for cid in range(len(sim.splits)):
        res = sim.client_fn(str(cid)).fit_task(FitIns(sim.initial_parameters, {"seed": 0}))
        assert res.parameters["coef"].shape == (3, sim.dataset.num_features)
    assert run_simulation(cfg).final["accuracy"] >= 0.9


def test_only_the_estimators_arrays_leave_a_client() -> None:
    """No scaler statistics, class counts or rows: the update holds exactly coef and intercept, and
    changing the client's feature means (what a locally fitted scaler would ship) changes nothing but them."""
    sim = build_simulation(RunConfig(dataset="breast_cancer", model="sklearn:logistic", clients=2, partition="iid",
                                     rounds=1, progress=False))
    res = sim.client_fn("0").fit_task(FitIns(sim.initial_parameters, {"seed": 0}))
    assert list(res.parameters) == ["coef", "intercept"]
    assert res.parameters["coef"].shape == (1, 30) and res.parameters["intercept"].shape == (1,)
    assert set(res.metrics) == {"train_loss", "train_accuracy", "train_auc"}
    local_means = sim.dataset.x_train[sim.splits[0].train].mean(axis=0)
    for arr in res.parameters.values():
        assert not np.isin(np.round(local_means, 6), np.round(arr, 6)).any()


def test_user_estimator_by_import_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_estimators.py").write_text(
        "from sklearn.linear_model import SGDClassifier\n"
        "def hinge(seed=0):\n    return SGDClassifier(loss='hinge', random_state=seed)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run_simulation(RunConfig(dataset="breast_cancer", model="sklearn:my_estimators:hinge", clients=3,
                                      partition="iid", rounds=2, progress=False, fraction_evaluate=0.0))
    assert result.final["accuracy"] >= 0.9


def test_an_estimator_without_coefficients_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="neither coef_ nor coefs_"):
        SklearnModel(ModelSpec("sklearn.tree:DecisionTreeClassifier", "classification", 4, 2))


def test_vectorized_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match="vectorized"):
        RunConfig(dataset="iris", model="sklearn:logistic", backend="vectorized").validate()


def test_cli_run_writes_accuracy_and_auc_without_importing_torch(tmp_path: Path) -> None:
    code = ("import atexit, runpy, sys; atexit.register(lambda: print('torch imported:', 'torch' in sys.modules)); "
            "sys.argv = ['fedloom', *sys.argv[1:]]; runpy.run_module('fedloom.cli', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code, "run", "--model", "sklearn:logistic", "--dataset",
                          "breast_cancer", "--clients", "4", "--partition", "iid", "--rounds", "2", "--no-progress",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch imported: False" in out.stdout
    final = json.loads((tmp_path / "run" / "summary.json").read_text())["final"]
    assert final["accuracy"] >= 0.95 and "auc" in final


@pytest.mark.parametrize("layer", [{"secagg": True}, {"dp": "central", "noise_multiplier": 0.1, "clip": 5.0},
                                   {"compression": "q8"}, {"aggregator": "median"}, {"strategy": "fedadam"},
                                   {"he": True, "fraction_evaluate": 1.0}], ids=str)
def test_update_layers_apply_to_estimator_arrays(layer: dict) -> None:
    if layer.get("he"):
        pytest.importorskip("tenseal")
    settings = {"fraction_evaluate": 0.0, **layer}
    result = run_simulation(RunConfig(dataset="breast_cancer", model="sklearn:logistic", clients=5, partition="iid",
                                      rounds=3, progress=False, **settings))
    accuracy = result.final.get("accuracy", result.history[-1].metrics.get("fed_accuracy"))
    assert accuracy is not None and accuracy >= 0.93
