"""MLflow and TensorBoard observers of a simulation (`fedloom run --mlflow --tensorboard`), read back with
each library's own API; both load only when asked for."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedloom.cli import main
from fedloom.engine import RoundRecord
from fedloom.errors import ConfigError
from fedloom.tracking import TrackingOptions, open_trackers
from fedloom.tracking.base import GuardedTracker

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 2

needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="needs mlflow (tracking extra)")
needs_tb = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="needs tensorboard")


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    if importlib.util.find_spec("mlflow") is None or importlib.util.find_spec("tensorboard") is None:
        pytest.skip("needs mlflow and tensorboard (the tracking extra)")
    tmp = tmp_path_factory.mktemp("tracked")
    main(["run", "--dataset", "iris", "--clients", "3", "--rounds", str(ROUNDS), "--no-progress",
          "--out", str(tmp / "run"), "--dp", "central", "--noise-multiplier", "0.3",
          "--mlflow-uri", str(tmp / "mlruns"), "--mlflow-experiment", "iris-test", "--tensorboard", str(tmp / "tb")])
    return tmp


@needs_mlflow
def test_fedloom_run_logs_config_metrics_epsilon_bytes_and_model_to_mlflow(tracked_run, monkeypatch):
    import mlflow
    from safetensors.numpy import load_file

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    summary = json.loads((tracked_run / "run" / "summary.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=(tracked_run / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("iris-test").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    params = run.data.params
    assert params["dataset"] == "iris" and params["clients"] == "3" and params["dp"] == "central"
    assert set(params) == set(summary["config"])  # every config field, nothing else
    for key in ("accuracy", "loss", "epsilon", "bytes_up", "bytes_down", "wall_s"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(range(1, ROUNDS + 1)), key
        assert [m.value for m in history] == pytest.approx([h[key] for h in summary["history"]]), key
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["model.safetensors"]
    got = load_file(client.download_artifacts(run.info.run_id, "model.safetensors", str(tracked_run)))
    want = load_file(tracked_run / "run" / "model.safetensors")
    assert want.keys() == got.keys() and all((want[k] == got[k]).all() for k in want)


@needs_tb
def test_fedloom_run_writes_config_metrics_epsilon_and_bytes_for_tensorboard(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = json.loads((tracked_run / "run" / "summary.json").read_text())
    acc = EventAccumulator(str(tracked_run / "tb" / "run"))
    acc.Reload()
    for key in ("accuracy", "loss", "epsilon", "bytes_up", "bytes_down"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == list(range(1, ROUNDS + 1)), key
        assert [e.value for e in events] == pytest.approx([h[key] for h in summary["history"]], rel=1e-6), key
    (config,) = acc.Tensors("config")
    text = config.tensor_proto.string_val[0].decode()
    assert 'dataset = "iris"' in text and 'dp = "central"' in text and f"rounds = {ROUNDS}" in text


def test_trackers_load_only_when_asked_for():
    """`fedloom --help`, `fedloom run --help` and a config without trackers import neither library."""
    code = (
        "import sys\n"
        "from fedloom.cli import main\n"
        "for argv in (['--help'], ['run', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "from fedloom.app.config import RunConfig\n"
        "from fedloom.tracking import open_trackers\n"
        "cfg = RunConfig(dataset='iris')\n"
        "cfg.validate()\n"
        "assert open_trackers(cfg.tracking, cfg.to_dict(), run_name='x') == []\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'tensorboard'))\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout


def test_a_tracker_asked_for_but_not_installed_is_a_clear_config_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("mlflow", "tensorboard")
                        else real(name, *a))
    with pytest.raises(ConfigError, match=r"--mlflow needs MLflow: pip install 'fedloom\[tracking\]'"):
        TrackingOptions(mlflow_uri="x").validate()  # a URI implies --mlflow
    with pytest.raises(ConfigError, match="--tensorboard needs TensorBoard"):
        TrackingOptions(tensorboard="tb").validate()
    TrackingOptions().validate()  # nothing asked, nothing needed


def test_a_failing_tracker_never_stops_the_run(caplog):
    class Broken:
        name = "broken"

        def on_round_end(self, record, state):
            raise OSError("disk full")

        def finish(self, result, model_path):
            raise OSError("disk still full")

    guarded = GuardedTracker(Broken())
    guarded.on_round_end(RoundRecord(3, {"accuracy": 0.5}), None)
    guarded.finish(None, None)
    assert guarded.errors == 1
    assert "broken: could not log round 3: disk full" in caplog.text


def test_no_tracker_without_options():
    assert open_trackers(TrackingOptions(), {"dataset": "iris"}, run_name="r") == []


@needs_mlflow
def test_a_failed_run_is_marked_failed_in_mlflow(tmp_path, monkeypatch):
    import mlflow

    from fedloom.tracking.mlflow_tracker import MlflowTracker

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracker = MlflowTracker(str(tmp_path / "mlruns"), "fedloom", {"dataset": "iris"}, run_name="broken")
    tracker.on_round_end(RoundRecord(1, {"accuracy": 0.5, "loss": float("nan")}), None)
    tracker.finish(None, None)
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FAILED" and run.data.metrics == {"accuracy": 0.5}  # NaN left out
    assert run.data.tags["fedloom.run"] == "broken" and client.list_artifacts(tracker.run_id) == []
