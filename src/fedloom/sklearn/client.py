"""The scikit-learn client: a :class:`~fedloom.core.numpy_client.NumPyClient` around one estimator."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedloom.core.numpy_client import NumPyClient
from fedloom.core.types import Config, Metrics
from fedloom.sklearn.models import ModelSpec, SklearnModel

__all__ = ["SklearnClient"]


class SklearnClient(NumPyClient):
    """Trains a scikit-learn estimator of ``spec`` on this client's ``(x, y)``; held-out ``test`` rows evaluate it.

    Only the estimator's fitted arrays leave the client (``coef``/``intercept`` or an MLP's
    ``coefs.i``/``intercepts.i``): no scaler statistics, no class counts, no rows. Each task starts
    from the global arrays; ``local_epochs`` passes (``partial_fit`` estimators) or one warm-started
    fit of ``sklearn_max_iter`` iterations, seeded by the task's ``seed``.
    """

    def __init__(self, spec: ModelSpec, x: np.ndarray, y: np.ndarray,
                 test: tuple[np.ndarray, np.ndarray] | None = None, *, local_epochs: int = 1) -> None:
        self.model = SklearnModel(spec)
        self.x, self.y = np.asarray(x, dtype=np.float64), np.asarray(y)
        self.test_data = test
        self.local_epochs = local_epochs

    def get_arrays(self) -> dict[str, np.ndarray]:
        return self.model.get_arrays()

    def set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.model.set_arrays(arrays)

    def train(self, config: Config) -> tuple[int, Metrics]:
        epochs = int(config.get("local_epochs", self.local_epochs))
        self.model.train(self.x, self.y, epochs=epochs, seed=int(config.get("seed", 0)))
        loss, metrics = self.model.scores(self.x, self.y)
        return len(self.y), {"train_loss": loss, **{f"train_{k}": v for k, v in metrics.items()}}

    def test(self, config: Config) -> tuple[float, int, Metrics]:
        if self.test_data is None or len(self.test_data[1]) == 0:
            return 0.0, 0, {}
        x, y = self.test_data
        loss, metrics = self.model.scores(np.asarray(x, dtype=np.float64), np.asarray(y))
        return loss, len(y), dict(metrics)
