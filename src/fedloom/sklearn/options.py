"""The ``[sklearn]`` section: scikit-learn estimators (``--model sklearn:NAME``)."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option

__all__ = ["SklearnOptions"]


@dataclass
class SklearnOptions:
    """``[sklearn]``: local training of scikit-learn estimators without ``partial_fit``."""

    sklearn_max_iter: int = option(10, "Solver iterations per round of estimators trained by a warm-started fit "
                                   "(sklearn:logistic); partial_fit estimators run --local-epochs passes instead.")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        need(self.sklearn_max_iter >= 1, f"sklearn_max_iter must be >= 1, got {self.sklearn_max_iter}")
