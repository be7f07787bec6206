"""The scenario section of a run: simulated stragglers and malicious clients."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.scenarios.registry import ATTACKS, STRAGGLER_MODES

__all__ = ["ScenarioOptions"]


@dataclass
class ScenarioOptions:
    """``[scenarios]``: researchers' test conditions (docs/strategies.md)."""

    attack: str = option("none", "Malicious client behaviour.", choices=lambda: ATTACKS)
    attackers: float = option(0.0, "Fraction of clients that are malicious (fixed for the run by --seed).")
    attack_scale: float = option(4.0, "sign_flip: the update is multiplied by -scale; scale: by +scale; gaussian: "
                                 "the update is N(0, scale^2) noise.")
    stragglers: float = option(0.0, "Fraction of sampled clients that straggle in each round, in [0, 1].")
    straggler_mode: str = option("epochs", "epochs: a straggler trains a random number of epochs in [1, E) and is "
                                 "kept by strategies that accept partial work (fedprox), dropped by others; "
                                 "drop: a straggler always fails.", choices=lambda: STRAGGLER_MODES)

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        need(self.attack in ATTACKS, f"unknown attack {self.attack!r}; choose one of: {ATTACKS.choices()}")
        need(0.0 <= self.attackers < 1.0, f"attackers must be a fraction in [0, 1), got {self.attackers}")
        need(self.attack == "none" or self.attackers > 0,
             f"--attack {self.attack} needs --attackers > 0 (the fraction of malicious clients)")
        need(self.attack_scale > 0, f"attack_scale must be > 0, got {self.attack_scale}")
        need(0.0 <= self.stragglers <= 1.0, f"stragglers must be a fraction in [0, 1], got {self.stragglers}")
        need(self.straggler_mode in STRAGGLER_MODES,
             f"unknown straggler_mode {self.straggler_mode!r}; choose one of: {STRAGGLER_MODES.choices()}")
