"""The personalization section of a run: which method, and its hyperparameters (docs/personalization.md)."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.personalization.registry import PERSONALIZATIONS

__all__ = ["PersonalizationOptions"]


@dataclass
class PersonalizationOptions:
    """``[personal]``: a model per client next to (or instead of part of) the global one."""

    personalization: str = option("none", "Personalization on each client: finetune (k local steps from the global "
                                  "model at evaluation), fedper (shared body, local head), fedrep (FedPer, head "
                                  "trained first with the body frozen), ditto (a personal model pulled towards the "
                                  "global one by --ditto-lambda), apfl (a local model mixed with the global one).",
                                  choices=lambda: PERSONALIZATIONS)
    personal_layers: str = option("", "fedper/fedrep: comma-separated parameter-name prefixes that stay on each "
                                  "client (the head), e.g. '2' for the built-in mlp's output layer; empty = the "
                                  "model's last layer. Only the other parameters are federated.")
    ditto_lambda: float = option(1.0, "ditto: lambda of lambda/2 ||v - w_global||^2 in each personal objective (0 = "
                                 "purely local training; large = the global model).")
    finetune_steps: int = option(5, "finetune: local SGD steps from the global model before each evaluation.")
    head_epochs: int = option(2, "fedrep: epochs of head-only training (body frozen) before the body's local epochs.")
    apfl_alpha: float = option(0.5, "apfl: initial weight of the local model in alpha v + (1 - alpha) w, in [0, 1].")
    apfl_adapt: bool = option(True, "apfl: learn each client's alpha by gradient descent (--no-apfl-adapt: keep it).")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        PERSONALIZATIONS.get(self.personalization)
        need(self.ditto_lambda >= 0, f"ditto_lambda must be >= 0, got {self.ditto_lambda}")
        need(self.finetune_steps >= 1, f"finetune_steps must be >= 1, got {self.finetune_steps}")
        need(0.0 <= self.apfl_alpha <= 1.0, f"apfl_alpha must be in [0, 1], got {self.apfl_alpha}")
        need(self.head_epochs >= 1, f"head_epochs must be >= 1, got {self.head_epochs}")
        for prefix in self.layer_prefixes:
            need(not prefix.startswith(".") and not prefix.endswith("."),
                 f"personal_layers: {prefix!r} is not a parameter-name prefix (write '2' or 'head', no dots at the "
                 "ends)")

    @property
    def layer_prefixes(self) -> tuple[str, ...]:
        """The ``personal_layers`` prefixes, split and stripped."""
        return tuple(p.strip() for p in self.personal_layers.split(",") if p.strip())
