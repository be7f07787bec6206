"""Privacy: SecAgg+ secure aggregation, differential privacy (central, adaptive, local, DP-SGD) and
the privacy ledger. Every mechanism is a wrapper around a client, a strategy or a pool; see
``docs/privacy.md`` for what each protects and against whom.

Names load on first use (the package itself imports nothing heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.privacy.accountant import EpsilonObserver, epsilon, max_rounds, noise_for_epsilon
    from fedloom.privacy.dp import CentralDP, LocalDPClient, adaptive_clip_step
    from fedloom.privacy.opacus import DPSGD
    from fedloom.privacy.secagg import Quantizer, SecAggClient, SecAggPool

_EXPORTS = {
    "EpsilonObserver": "fedloom.privacy.accountant",
    "epsilon": "fedloom.privacy.accountant",
    "max_rounds": "fedloom.privacy.accountant",
    "noise_for_epsilon": "fedloom.privacy.accountant",
    "CentralDP": "fedloom.privacy.dp",
    "LocalDPClient": "fedloom.privacy.dp",
    "adaptive_clip_step": "fedloom.privacy.dp",
    "DPSGD": "fedloom.privacy.opacus",
    "Quantizer": "fedloom.privacy.secagg",
    "SecAggClient": "fedloom.privacy.secagg",
    "SecAggPool": "fedloom.privacy.secagg",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DPSGD",
    "CentralDP",
    "EpsilonObserver",
    "LocalDPClient",
    "Quantizer",
    "SecAggClient",
    "SecAggPool",
    "adaptive_clip_step",
    "epsilon",
    "max_rounds",
    "noise_for_epsilon",
]
