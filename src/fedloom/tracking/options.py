"""The tracking section of a run: experiment trackers people already use (MLflow, TensorBoard)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from fedloom.core.options import need, option

__all__ = ["TrackingOptions"]


@dataclass
class TrackingOptions:
    """``[tracking]``: log the run to MLflow and/or TensorBoard (optional extras, loaded only when set)."""

    mlflow: bool = option(False, "Log config, per-round metrics (epsilon and bytes included) and the final model "
                          "to MLflow (pip install 'fedloom[tracking]').")
    mlflow_uri: str = option("", "MLflow tracking URI or directory (default: ./mlruns); implies --mlflow.")
    mlflow_experiment: str = option("fedloom", "MLflow experiment the run is logged under.")
    tensorboard: str = option("", "Write TensorBoard event files (config, per-round metrics) to DIR/<run name>.")

    @property
    def use_mlflow(self) -> bool:
        """MLflow is on: ``--mlflow`` or a ``--mlflow-uri``."""
        return self.mlflow or bool(self.mlflow_uri)

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` if a tracker is asked for but not installed."""
        if self.use_mlflow:
            need(bool(self.mlflow_experiment), "mlflow_experiment must not be empty")
            need(importlib.util.find_spec("mlflow") is not None,
                 "--mlflow needs MLflow: pip install 'fedloom[tracking]' (or mlflow-skinny)")
        if self.tensorboard:
            need(importlib.util.find_spec("tensorboard") is not None,
                 "--tensorboard needs TensorBoard: pip install 'fedloom[tracking]' (or tensorboard)")
