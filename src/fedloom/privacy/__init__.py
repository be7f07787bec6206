"""Privacy: SecAgg+ secure aggregation, differential privacy (central, adaptive, local, DP-SGD) and
the privacy ledger. Every mechanism is a wrapper around a client, a strategy or a pool; see
``docs/privacy.md`` for what each protects and against whom.
"""

from fedloom.privacy.accountant import EpsilonObserver, epsilon, max_rounds, noise_for_epsilon
from fedloom.privacy.dp import CentralDP, LocalDPClient, adaptive_clip_step
from fedloom.privacy.opacus import DPSGD
from fedloom.privacy.secagg import Quantizer, SecAggClient, SecAggPool

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
