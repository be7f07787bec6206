"""Heterogeneous fleets on a virtual clock: device speed, availability and bandwidth per client.

A simulation runs every client on one machine, so its wall time says nothing about a real fleet's.
:class:`Heterogeneity` gives each client a *virtual* duration per task and a virtual on/off
schedule, so the round loop (:mod:`fedloom.scenarios.virtual_clock`) and the asynchronous loop
(:mod:`fedloom.engine.async_loop`) can report the time a fleet would need (``virtual_time_s``).

* **Device speed** (``--device-speed``): each client's slowness, a multiplier of the median
  device's compute time. ``none``: every device alike; ``lognormal:SIGMA``: ``exp(N(0, SIGMA^2))``
  (median 1; SIGMA = 1 spans about 50x between the 5th and 95th percentile, SIGMA = 2 about
  700x); ``trace:PATH``: a text file with one positive number per line, client ``i`` on line
  ``i`` (cycled when the file has fewer lines than clients).
* **Compute time** of a task: ``seconds_per_example * slowness * examples * local_epochs``.
* **Bandwidth** (``--bandwidth-mbps``, 0 = transfers take no time): the task's and the result's
  array payload in bits over the bandwidth.
* **Availability** (``--availability``): ``always``; ``onoff``: client ``i`` is off for a fraction
  ``unavailable`` of every ``availability_period_s``, at its own random phase, so about that
  fraction of the fleet is off at any time; ``diurnal``: the same with a one-day period and
  phases drawn from four time zones, so the available share of the fleet varies over the day.

Everything is drawn once from the run seed (a stream of its own): it is a scenario, not privacy
randomness, and a resumed run sees the same fleet.

Example:
    >>> h = Heterogeneity(3, device_speed="lognormal:1.0", seed=0)
    >>> [round(float(x), 3) for x in h.slowness]
    [3.375, 0.429, 2.432]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedloom.core.pool import payload_nbytes
from fedloom.core.registry import Registry
from fedloom.core.types import ClientId, FitIns, FitRes
from fedloom.errors import ConfigError

__all__ = ["AVAILABILITY", "DEVICE_SPEEDS", "Heterogeneity", "check_device_speed"]

_STREAM = 0x4E7E  # separates the fleet's draws from every other use of the run seed
_DAY_S = 86400.0

DEVICE_SPEEDS: Registry[Callable[..., Any]] = Registry("device speed model", plural="device_speeds")
"""``--device-speed NAME[:ARG]``: ``factory(rng, num_clients, arg) -> slowness array``."""
AVAILABILITY: Registry[str] = Registry("availability model", plural="availability_models")
"""``--availability NAME``."""


def _none(rng: np.random.Generator, n: int, arg: str) -> np.ndarray:
    return np.ones(n)


def _lognormal(rng: np.random.Generator, n: int, arg: str) -> np.ndarray:
    try:
        sigma = float(arg) if arg else 1.0
    except ValueError as exc:
        raise ConfigError(f"device_speed lognormal:SIGMA needs a number, got {arg!r}") from exc
    if sigma < 0:
        raise ConfigError(f"device_speed lognormal:SIGMA needs SIGMA >= 0, got {sigma}")
    return np.exp(rng.normal(0.0, sigma, size=n))


def _trace(rng: np.random.Generator, n: int, arg: str) -> np.ndarray:
    path = Path(arg)
    if not path.is_file():
        raise ConfigError(f"device_speed trace:PATH: no file {arg!r} (one positive number per line, client i on "
                          "line i)")
    try:
        values = np.array([float(x) for x in path.read_text().split()], dtype=np.float64)
    except ValueError as exc:
        raise ConfigError(f"device_speed trace {arg}: every line must be a number ({exc})") from exc
    if values.size == 0 or not (np.isfinite(values).all() and (values > 0).all()):
        raise ConfigError(f"device_speed trace {arg}: needs at least one line, every value finite and > 0")
    return np.resize(values, n)


DEVICE_SPEEDS.register("none", _none, help="Every device equally fast.")
DEVICE_SPEEDS.register("lognormal", _lognormal, help="lognormal:SIGMA: slowness exp(N(0, SIGMA^2)), median 1.")
DEVICE_SPEEDS.register("trace", _trace, help="trace:PATH: one slowness per line, client i on line i.")
AVAILABILITY.register("always", "always", help="Every client is always available.")
AVAILABILITY.register("onoff", "onoff", help="Each client is off a fraction --unavailable of every period, own phase.")
AVAILABILITY.register("diurnal", "diurnal", help="On/off over a day, phases from four time zones.")


def check_device_speed(spec: str) -> None:
    """Raise :class:`ConfigError` unless ``spec`` names a device speed model (a trace file is read later)."""
    name, _, arg = spec.partition(":")
    DEVICE_SPEEDS.get(name)
    if name == "lognormal":
        _lognormal(np.random.default_rng(0), 1, arg)


class Heterogeneity:
    """A fleet's per-client speed, availability and bandwidth, on a virtual clock.

    Args:
        num_clients: Clients ``"0" .. str(num_clients - 1)``.
        device_speed: ``none``, ``lognormal:SIGMA`` or ``trace:PATH``.
        availability: ``always``, ``onoff`` or ``diurnal``.
        unavailable: Fraction of each period a client is off, in ``[0, 1)``.
        period_s: The on/off period of ``onoff`` (``diurnal``: one day).
        seconds_per_example: Compute time of the median device per example and epoch.
        bandwidth_mbps: Each client's link, in megabits per second (0: transfers take no time).
        seed: The run seed.
    """

    def __init__(self, num_clients: int, *, device_speed: str = "none", availability: str = "always",
                 unavailable: float = 0.2, period_s: float = 600.0, seconds_per_example: float = 1e-3,
                 bandwidth_mbps: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= unavailable < 1.0:
            raise ConfigError(f"unavailable must be in [0, 1), got {unavailable}")
        if period_s <= 0 or seconds_per_example < 0 or bandwidth_mbps < 0:
            raise ConfigError("availability_period_s must be > 0, seconds_per_example and bandwidth_mbps >= 0")
        name, _, arg = device_speed.partition(":")
        AVAILABILITY.get(availability)
        rng = np.random.default_rng([_STREAM, seed])
        self.num_clients = num_clients
        self.slowness: np.ndarray = np.asarray(DEVICE_SPEEDS.get(name)(rng, num_clients, arg), dtype=np.float64)
        self.availability = availability
        self.unavailable = 0.0 if availability == "always" else unavailable
        self.period_s = _DAY_S if availability == "diurnal" else period_s
        if availability == "diurnal":
            zones = rng.integers(0, 4, size=num_clients) / 4.0
            self.phase = (zones + rng.uniform(0.0, 1.0 / 24.0, size=num_clients)) % 1.0
        else:
            self.phase = rng.uniform(0.0, 1.0, size=num_clients)
        self.seconds_per_example = seconds_per_example
        self.bandwidth_mbps = bandwidth_mbps

    def _index(self, cid: ClientId) -> int:
        i = int(cid)
        if not 0 <= i < self.num_clients:
            raise ConfigError(f"client {cid!r} is outside the simulated fleet of {self.num_clients}")
        return i

    # -- time ----------------------------------------------------------------------------
    def compute_s(self, cid: ClientId, num_examples: int, epochs: int = 1) -> float:
        """Virtual seconds client ``cid`` computes for a task over ``num_examples`` for ``epochs``."""
        return float(self.seconds_per_example * self.slowness[self._index(cid)] * max(0, num_examples) * max(1, epochs))

    def transfer_s(self, nbytes: int) -> float:
        """Virtual seconds to move ``nbytes`` over one client's link (0 without a bandwidth)."""
        return 0.0 if self.bandwidth_mbps <= 0 else nbytes * 8.0 / (self.bandwidth_mbps * 1e6)

    def duration_s(self, cid: ClientId, ins: FitIns, res: FitRes | None) -> float:
        """A training task's virtual duration: download, compute (on the examples it reports), upload."""
        epochs = int(ins.config.get("local_epochs", 1) or 1)
        examples = int(res.num_examples) if res is not None else 0
        moved = payload_nbytes(ins) + (payload_nbytes(res) if res is not None else 0)
        return self.compute_s(cid, examples, epochs) + self.transfer_s(moved)

    # -- availability ----------------------------------------------------------------------
    def is_available(self, cid: ClientId, t: float) -> bool:
        """Whether client ``cid`` can take a task at virtual time ``t``."""
        if self.unavailable <= 0:
            return True
        i = self._index(cid)
        return bool((t / self.period_s + self.phase[i]) % 1.0 >= self.unavailable)

    def next_change(self, t: float) -> float:
        """The first virtual time after ``t`` at which some client comes on or goes off."""
        if self.unavailable <= 0:
            return t + self.period_s
        x = t / self.period_s + self.phase
        base = np.floor(x)
        frac = x - base
        flip = np.where(frac < self.unavailable, base + self.unavailable, base + 1.0)
        times = (flip - self.phase) * self.period_s
        later = times[times > t]
        return float(later.min()) if later.size else t + self.period_s
