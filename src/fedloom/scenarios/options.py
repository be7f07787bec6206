"""The scenario section of a run: simulated stragglers and malicious clients."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.scenarios.registry import ATTACKS, STRAGGLER_MODES

__all__ = ["HeterogeneityOptions", "ScenarioOptions"]


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


@dataclass
class HeterogeneityOptions:
    """``[heterogeneity]``: a simulated fleet's device speeds, availability and bandwidth on a virtual clock
    (:mod:`fedloom.scenarios.heterogeneity`); history records then carry ``virtual_time_s``."""

    device_speed: str = option("none", "Per-client slowness: none, lognormal:SIGMA (median 1) or trace:PATH (one "
                               "number per line, client i on line i).")
    availability: str = option("always", "always, onoff (each client off --unavailable of every period) or diurnal "
                               "(a day's period, four time zones).")
    unavailable: float = option(0.2, "onoff/diurnal: fraction of the time each client is unavailable, in [0, 1).")
    availability_period_s: float = option(600.0, "onoff: virtual seconds of one on/off period.")
    seconds_per_example: float = option(0.001, "Virtual compute seconds of the median device per example and epoch.")
    bandwidth_mbps: float = option(0.0, "Each client's link in Mbit/s for the virtual clock (0: transfers are free).")
    virtual_deadline_s: float = option(0.0, "Synchronous rounds: virtual seconds a round waits; slower clients "
                                       "fail (0: wait for the slowest).")

    def enabled(self) -> bool:
        """Whether a virtual clock is asked for (any setting other than the defaults' 'none' and 'always')."""
        return self.device_speed != "none" or self.availability != "always" or self.bandwidth_mbps > 0

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        from fedloom.scenarios.heterogeneity import AVAILABILITY, check_device_speed

        check_device_speed(self.device_speed)
        need(self.availability in AVAILABILITY,
             f"unknown availability {self.availability!r}; choose one of: {AVAILABILITY.choices()}")
        need(0.0 <= self.unavailable < 1.0, f"unavailable must be in [0, 1), got {self.unavailable}")
        need(self.availability_period_s > 0, f"availability_period_s must be > 0, got {self.availability_period_s}")
        need(self.seconds_per_example >= 0, f"seconds_per_example must be >= 0, got {self.seconds_per_example}")
        need(self.bandwidth_mbps >= 0, f"bandwidth_mbps must be >= 0, got {self.bandwidth_mbps}")
        need(self.virtual_deadline_s >= 0, f"virtual_deadline_s must be >= 0, got {self.virtual_deadline_s}")
