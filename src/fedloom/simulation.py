"""Compatibility: building runs from a config moved to :mod:`fedloom.app.build`, and
:func:`simulate` to :mod:`fedloom.engine.simulate`; import them from there (or from ``fedloom``)."""

from fedloom.app.build import Simulation, assemble_loop, build_simulation, run_simulation
from fedloom.engine.simulate import simulate

__all__ = ["Simulation", "assemble_loop", "build_simulation", "run_simulation", "simulate"]
