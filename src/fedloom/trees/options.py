"""The ``[trees]`` section: gradient-boosted trees (``--model xgboost``) and their federated strategies."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option

__all__ = ["TreeOptions"]


@dataclass
class TreeOptions:
    """``[trees]``: XGBoost hyperparameters shared by xgb-bagging, xgb-cyclic and xgb-histogram."""

    xgb_eta: float = option(0.3, "Learning rate (eta) applied to every tree's leaf values.")
    xgb_max_depth: int = option(4, "Maximum tree depth (xgb-histogram: one round per level).")
    xgb_lambda: float = option(1.0, "L2 regularization of leaf weights (lambda).")
    xgb_gamma: float = option(0.0, "Minimum loss reduction to split (gamma, min_split_loss).")
    xgb_min_child_weight: float = option(1.0, "Minimum hessian sum in a child (min_child_weight).")
    xgb_local_rounds: int = option(1, "xgb-bagging/xgb-cyclic: boosting rounds (trees) a client adds per round.")
    xgb_bins: int = option(32, "xgb-histogram: feature bins (global edges from the federated sketch round).")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        need(0.0 < self.xgb_eta <= 1.0, f"xgb_eta must be in (0, 1], got {self.xgb_eta}")
        need(1 <= self.xgb_max_depth <= 12, f"xgb_max_depth must be in [1, 12], got {self.xgb_max_depth}")
        need(self.xgb_lambda >= 0, f"xgb_lambda must be >= 0, got {self.xgb_lambda}")
        need(self.xgb_gamma >= 0, f"xgb_gamma must be >= 0, got {self.xgb_gamma}")
        need(self.xgb_min_child_weight >= 0, f"xgb_min_child_weight must be >= 0, got {self.xgb_min_child_weight}")
        need(self.xgb_local_rounds >= 1, f"xgb_local_rounds must be >= 1, got {self.xgb_local_rounds}")
        need(2 <= self.xgb_bins <= 256, f"xgb_bins must be in [2, 256], got {self.xgb_bins}")
