"""Simulated heterogeneity and adversaries: stragglers and malicious clients, as client wrappers.

The wrappers are ordinary :class:`~fedloom.Client` objects, so they run in every backend; the app
layer (:mod:`fedloom.app.layers`) puts them around a configured run's clients.

Names load on first use (the package itself imports nothing heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.scenarios.attacks import ATTACKS, AlieCollusion, MaliciousClient, alie_z, choose_attackers
    from fedloom.scenarios.base import ClientWrapper
    from fedloom.scenarios.stragglers import STRAGGLER_MODES, StragglerClient, StragglerDropped, is_straggler

_EXPORTS = {
    "ATTACKS": "fedloom.scenarios.attacks",
    "AlieCollusion": "fedloom.scenarios.attacks",
    "MaliciousClient": "fedloom.scenarios.attacks",
    "alie_z": "fedloom.scenarios.attacks",
    "choose_attackers": "fedloom.scenarios.attacks",
    "ClientWrapper": "fedloom.scenarios.base",
    "STRAGGLER_MODES": "fedloom.scenarios.stragglers",
    "StragglerClient": "fedloom.scenarios.stragglers",
    "StragglerDropped": "fedloom.scenarios.stragglers",
    "is_straggler": "fedloom.scenarios.stragglers",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ATTACKS",
    "STRAGGLER_MODES",
    "AlieCollusion",
    "ClientWrapper",
    "MaliciousClient",
    "StragglerClient",
    "StragglerDropped",
    "alie_z",
    "choose_attackers",
    "is_straggler",
]
