"""Log a run to MLflow: config as parameters, every round's metrics by step, the final model as an artifact.

Uses :class:`mlflow.MlflowClient` directly (no global active run), so several runs in one process
never mix. A tracking URI that is a directory (the default ``./mlruns``) is MLflow's file store:
MLflow 3 keeps it in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``, which is set for that case
only (``mlflow-skinny`` has no SQL store; pass ``--mlflow-uri sqlite:///...`` or ``http://...`` with a
full MLflow or a tracking server).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedloom.core.strategy import ServerState
from fedloom.engine.loop import RoundRecord, RunResult

__all__ = ["MlflowTracker", "resolve_uri"]

_MAX_PARAM = 6000  # MLflow's limit on a parameter value


def resolve_uri(uri: str) -> str:
    """``uri`` as MLflow expects it: a URI stays, a directory (or nothing: ``./mlruns``) becomes ``file://``."""
    if "://" in uri or uri.startswith(("sqlite:", "databricks")):
        return uri
    return Path(uri or "mlruns").resolve().as_uri()


class MlflowTracker:
    """One MLflow run per fedloom run.

    Args:
        uri: Tracking URI or directory (``""``: ``./mlruns``).
        experiment: Experiment name (created if missing).
        config: The run's flat config, logged as parameters.
        run_name: The MLflow run's name.
    """

    name = "mlflow"

    def __init__(self, uri: str, experiment: str, config: Mapping[str, Any], *, run_name: str) -> None:
        self.uri = resolve_uri(uri)
        if self.uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        run = self.client.create_run(exp_id, run_name=run_name, tags={"fedloom.run": run_name})
        self.run_id: str = run.info.run_id
        params = [Param(k, str(v)[:_MAX_PARAM]) for k, v in sorted(config.items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def on_round_end(self, record: RoundRecord, state: ServerState) -> None:
        """Log every metric of the round (accuracy, loss, epsilon, bytes_*, wall_s, ...) at step = round."""
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, record.round) for k, v in record.metrics.items() if math.isfinite(v)]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def finish(self, result: RunResult | None, model_path: Path | None) -> None:
        """Log ``model_path`` (the final model) as an artifact and end the run (FAILED without a result)."""
        if result is not None and model_path is not None and model_path.exists():
            self.client.log_artifact(self.run_id, str(model_path))
        if result is not None and result.stopped_early:
            self.client.set_tag(self.run_id, "fedloom.stopped_early", result.stopped_early)
        self.client.set_terminated(self.run_id, "FINISHED" if result is not None else "FAILED")
