"""The privacy section of a run: secure aggregation and differential privacy."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.privacy.registry import ACCOUNTANTS, DP_MODES

__all__ = ["PrivacyOptions"]


@dataclass
class PrivacyOptions:
    """``[privacy]``: SecAgg+, central/local DP, DP-SGD and the accountant (docs/privacy.md)."""

    secagg: bool = option(False, "Secure aggregation (SecAgg+): the server learns only the sum of the updates.")
    secagg_neighbours: int = option(0, "SecAgg+ neighbours per client: 0 = about 2*log2(n), -1 = complete graph.")
    secagg_threshold: int = option(0, "Shares needed to recover a secret: 0 = a majority of the neighbours, else >= 2.")
    secagg_bits: int = option(32, "SecAgg ring size 2^bits for the quantized updates (uploads use the narrowest int).")
    secagg_weight_cap: float = option(1000.0, "SecAgg example weights are min(n, cap)/cap (FedAvg weighting).")
    dp: str = option("none", "Differential privacy.", choices=lambda: DP_MODES)
    noise_multiplier: float = option(0.0, "DP noise std / clip norm (0 with --target-epsilon: calibrated to it).")
    clip: float = option(0.0, "L2 clip norm of each client update (0 = 1.0 with DP, 100 for SecAgg alone).")
    adaptive_quantile: float = option(0.5, "Target quantile of update norms for --dp central-adaptive.")
    target_epsilon: float = option(0.0, "Privacy budget: refuse to start or stop before exceeding it (0 = none).")
    delta: float = option(1e-5, "The delta of the reported (epsilon, delta).")
    accountant: str = option("rdp", "Privacy accountant.", choices=lambda: ACCOUNTANTS)
    dp_sgd: bool = option(False, "Sample-level DP-SGD in local training (Opacus).")
    dp_sgd_noise_multiplier: float = option(1.0, "DP-SGD noise multiplier (per-sample gradients).")
    dp_sgd_max_grad_norm: float = option(1.0, "DP-SGD per-sample gradient clip norm.")
    dp_insecure_reproducible_noise: bool = option(
        False, "NOT PRIVATE: draw DP noise, DP sampling and SecAgg rounding from the run/task seeds (reproducible, "
        "so anyone who knows the seed can subtract the noise). For debugging and tests only.")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value of this section alone."""
        need(self.dp in DP_MODES, f"unknown --dp {self.dp!r}; choose one of: {DP_MODES.choices()}")
        need(self.noise_multiplier >= 0, f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        need(self.clip >= 0, f"clip must be >= 0 (0 = default), got {self.clip}")
        need(self.target_epsilon >= 0, f"target_epsilon must be >= 0 (0 = none), got {self.target_epsilon}")
        need(0 < self.delta < 1, f"delta must be in (0, 1), got {self.delta}")
        need(0 < self.adaptive_quantile < 1, f"adaptive_quantile must be in (0, 1), got {self.adaptive_quantile}")
        need(self.accountant in ACCOUNTANTS,
             f"unknown accountant {self.accountant!r}; choose one of: {ACCOUNTANTS.choices()}")
        need(self.secagg_neighbours >= -1, f"secagg_neighbours must be >= -1, got {self.secagg_neighbours}")
        need(self.secagg_threshold == 0 or self.secagg_threshold >= 2,
             f"secagg_threshold must be 0 (a majority of the neighbours) or >= 2, got {self.secagg_threshold}: with "
             "threshold 1 every share is the secret itself, so any one neighbour could unmask a client")
        need(2 <= self.secagg_bits <= 64, f"secagg_bits must be in 2..64, got {self.secagg_bits}")
        need(self.secagg_weight_cap >= 0, f"secagg_weight_cap must be >= 0, got {self.secagg_weight_cap}")
        need(self.dp_sgd_noise_multiplier >= 0 and self.dp_sgd_max_grad_norm > 0,
             "dp_sgd_noise_multiplier must be >= 0 and dp_sgd_max_grad_norm > 0")

    @property
    def mode(self) -> object:
        """The :class:`~fedloom.privacy.registry.DPMode` of ``dp``."""
        return DP_MODES.get(self.dp)
