"""SecAgg+ secure aggregation: the server learns only the sum of the clients' updates.

Wrap each client in :class:`SecAggClient` and the pool in :class:`SecAggPool`; strategies and the
round loop are unchanged. See ``docs/privacy.md`` for the threat model.
"""

from fedloom.privacy.secagg.client import SecAggClient, masked_update
from fedloom.privacy.secagg.graph import default_degree, default_threshold, neighbour_graph
from fedloom.privacy.secagg.quantize import Quantizer, clip_l2
from fedloom.privacy.secagg.server import AGGREGATE_ID, SECAGG_SUM, SecAggPool

__all__ = [
    "AGGREGATE_ID",
    "SECAGG_SUM",
    "Quantizer",
    "SecAggClient",
    "SecAggPool",
    "clip_l2",
    "default_degree",
    "default_threshold",
    "masked_update",
    "neighbour_graph",
]
