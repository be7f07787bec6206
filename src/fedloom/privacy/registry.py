"""The privacy registries: differential-privacy modes (``--dp``) and accountants (``--accountant``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fedloom.core.registry import Registry

__all__ = ["ACCOUNTANTS", "DP_MODES", "DPMode"]

ACCOUNTANTS: Registry[Callable[[float, tuple[tuple[float, int], ...], float], float]] = Registry(
    "accountant", modules=["fedloom.privacy.accountant"]
)
"""``(noise_multiplier, schedule, delta) -> epsilon`` by name; ``schedule`` is the runs of rounds
``((sampling_rate, rounds), ...)`` in order (Poisson-sampled Gaussian steps)."""


@dataclass(frozen=True)
class DPMode:
    """Where a differential-privacy mode adds noise.

    Attributes:
        central: Noise on the server, on the clipped sum (``False``: each client noises its update).
        adaptive: The clip norm follows a quantile of the update norms (Andrew et al., 2021).
    """

    enabled: bool
    central: bool = False
    adaptive: bool = False


DP_MODES: Registry[DPMode] = Registry("dp mode", plural="dp_modes")
DP_MODES.register("none", DPMode(False), help="No differential privacy.")
DP_MODES.register("central", DPMode(True, central=True), help="Clip each update, noise the sum on the server.")
DP_MODES.register("central-adaptive", DPMode(True, central=True, adaptive=True),
                  help="Central DP with a clip norm that tracks a quantile of update norms.")
DP_MODES.register("local", DPMode(True), help="Each client clips and noises its own update.")
