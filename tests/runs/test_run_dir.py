"""The run directory: --out refuses an existing run, a failed run says so, report reads it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fedloom.app.config import RunConfig
from fedloom.cli import cli
from fedloom.errors import ConfigError
from fedloom.runs import runner
from fedloom.runs.runner import execute_run

SMALL = {"dataset": "iris", "clients": 3, "rounds": 2, "partition": "iid", "hidden": 8, "progress": False}


def test_out_holding_a_run_is_refused_unless_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    execute_run(RunConfig(**SMALL, out=str(out)))
    with pytest.raises(ConfigError, match="already holds a run .* pass --resume to continue it, --overwrite"):
        execute_run(RunConfig(**SMALL, out=str(out)))
    summary, _ = execute_run(RunConfig(**{**SMALL, "rounds": 1}, out=str(out), overwrite=True))
    assert [h["round"] for h in summary["history"]] == [1]  # replaced, not appended
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a run's"):  # never deletes files that are not the run's
        execute_run(RunConfig(**SMALL, out=str(out), overwrite=True))
    assert (out / "notes.txt").exists()


def test_a_run_failing_after_a_round_is_marked_failed_and_report_says_so(tmp_path, monkeypatch):
    real = runner.run_simulation

    class Boom:
        def on_round_end(self, record, state):
            if record.round == 2:
                raise RuntimeError("disk full")

    monkeypatch.setattr(runner, "run_simulation", lambda cfg, observers, **kw: real(
        cfg, observers=[*observers, Boom()], **kw))
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="disk full"):
        execute_run(RunConfig(**SMALL, out=str(out)))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: disk full"
    assert [h["round"] for h in summary["history"]] == [1, 2] and "accuracy" in summary["final"]
    result = CliRunner().invoke(cli, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "this run FAILED after 2 round(s): RuntimeError: disk full" in result.output
    assert "This run failed after 2 round(s):</b> RuntimeError: disk full" in (out / "report.html").read_text()


def test_a_run_failing_before_its_first_round_leaves_no_directory(tmp_path, monkeypatch):
    def fail(cfg, observers, **kw):
        raise RuntimeError("no memory")

    monkeypatch.setattr(runner, "run_simulation", fail)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        execute_run(RunConfig(**SMALL, out=str(out)))
    assert not out.exists()


def test_text_labels_are_saved_in_the_run_directory(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("a,b,kind\n" + "".join(f"{i % 7},{i % 5},{'cat' if i % 2 else 'dog'}\n" for i in range(40)))
    summary, out = execute_run(RunConfig(**{**SMALL, "dataset": str(csv), "target_column": "kind"},
                                         out=str(tmp_path / "run")))
    assert json.loads((out / "labels.json").read_text()) == {"labels": {"0": "cat", "1": "dog"}}
    assert summary["labels"] == {"0": "cat", "1": "dog"} and summary["status"] == "completed"


def test_version_verbose_after_the_command_and_choices_in_help():
    runner_ = CliRunner()
    version = runner_.invoke(cli, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("fedloom ")
    helped = runner_.invoke(cli, ["run", "-v", "--help"])
    assert helped.exit_code == 0, helped.output
    text = " ".join(helped.output.split())
    assert "-v, --verbose" in text
    for flag, name in (("--strategy", "fedprox"), ("--aggregator", "median"), ("--dataset", "breast_cancer")):
        after = text[text.index(flag + " "):]
        assert "Choices:" in after[:600] and name in after[:600], flag


def test_fedloom_data_shows_the_label_and_group_encoding(tmp_path):
    csv = tmp_path / "patients.csv"
    csv.write_text("age,diagnosis,site\n" + "".join(
        f"{i % 50},{'malignant' if i % 3 else 'benign'},{['north', 'south'][i % 2]}\n" for i in range(80)))
    result = CliRunner().invoke(cli, ["data", "--dataset", str(csv), "--target-column", "diagnosis",
                                      "--group-column", "site"])
    assert result.exit_code == 0, result.output
    assert "column over 2 clients" in " ".join(result.output.split())  # --group-column: one client per group
    assert "north" in result.output and "south" in result.output
    assert "labels: y=0 benign, y=1 malignant" in result.output


def test_a_regression_dataset_with_the_default_partition_says_what_to_use():
    from fedloom.simulation import build_simulation

    with pytest.raises(ConfigError, match="partition 'dirichlet' needs class labels; use iid or quantity"):
        build_simulation(RunConfig(dataset="diabetes", clients=3, progress=False))


def test_string_metrics_and_the_initial_evaluation_reach_the_run_directory(tmp_path):
    """Issue 20: a user's string metrics are kept in metrics.sqlite and summary.json; round 0 is in the summary."""
    import json

    from fedloom.core.parameters import Parameters
    from fedloom.core.strategy import ServerState
    from fedloom.engine.loop import RoundRecord, RunResult
    from fedloom.runs.store import RunStore, read_history

    store = RunStore(tmp_path / "run")
    records = [RoundRecord(r, {"accuracy": 0.5 + r / 10}, {"worst_class": f"class {r}"}) for r in (1, 2)]
    for record in records:
        store.on_round_end(record, ServerState(Parameters()))
    assert read_history(store.path) == [{"round": 1, "accuracy": 0.6}, {"round": 2, "accuracy": 0.7}]
    assert [h["worst_class"] for h in read_history(store.path, text=True)] == ["class 1", "class 2"]
    initial = RoundRecord(0, {"accuracy": 0.1}, {"worst_class": "class 0"})
    result = RunResult(state=ServerState(Parameters()), history=records, initial=initial)
    store.write_summary(result, {}, 1.0)
    summary = json.loads((store.path / "summary.json").read_text())
    assert summary["initial"] == {"round": 0, "accuracy": 0.1, "worst_class": "class 0"}
    assert [h["worst_class"] for h in summary["history"]] == ["class 1", "class 2"]
