"""The federation section of a run: how many clients, rounds, and who takes part each round."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option

__all__ = ["FederationOptions"]


@dataclass
class FederationOptions:
    """``[federation]``: population, rounds, sampling and evaluation schedule."""

    clients: int = option(10, "Number of simulated clients.")
    rounds: int = option(20, "Number of federated rounds.")
    fraction: float = option(1.0, "Fraction of clients sampled for training each round, in (0, 1].")
    min_clients: int = option(1, "Minimum clients sampled per round.")
    fraction_evaluate: float = option(0.0, "Fraction of clients for federated evaluation (0 = central only).")
    weighted: bool = option(True, "Weight client updates by their number of examples.")
    eval_every: int = option(1, "Evaluate every N rounds (and after the last).")
    max_model_change: float = option(1000.0, "Fail a round whose new global model moved more than this many times "
                                     "the previous model's L2 norm (floored at 1), keeping the previous state "
                                     "(0 = no bound; a non-finite model always fails the round).")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        need(self.clients >= 1, f"clients must be >= 1, got {self.clients}")
        need(self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}")
        need(0.0 < self.fraction <= 1.0, f"fraction must be in (0, 1], got {self.fraction}")
        need(0.0 <= self.fraction_evaluate <= 1.0, f"fraction_evaluate must be in [0, 1], got {self.fraction_evaluate}")
        need(self.min_clients >= 1, f"min_clients must be >= 1, got {self.min_clients}")
        need(self.min_clients <= self.clients,
             f"min_clients ({self.min_clients}) cannot exceed clients ({self.clients})")
        need(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        need(self.max_model_change >= 0, f"max_model_change must be >= 0 (0 = no bound), got {self.max_model_change}")
