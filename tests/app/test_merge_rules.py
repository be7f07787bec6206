"""Rules between features that landed together: personalization and async FL need what the tabular models lack."""

from __future__ import annotations

import pytest

from fedloom.app.config import RunConfig
from fedloom.errors import ConfigError


def test_personalization_with_a_scikit_learn_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="personalization fedper personalizes a PyTorch model"):
        RunConfig(dataset="breast_cancer", model="sklearn:logistic", personalization="fedper",
                  fraction_evaluate=1.0).validate()


def test_async_mode_with_trees_is_refused() -> None:
    with pytest.raises(ConfigError, match="async needs a FedAvg-family strategy"):
        RunConfig(dataset="breast_cancer", model="xgboost", strategy="xgb-bagging", mode="async").validate()
