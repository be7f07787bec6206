"""Personalization: a model that is good for each client, next to the global one (docs/personalization.md).

Client-side methods, one module each: :class:`FineTune` (local steps at evaluation),
:class:`FedPer` and :class:`FedRep` (shared body, personal head that never leaves the client),
:class:`Ditto` (a personal model regularized towards the global one) and :class:`APFL` (a local model
mixed with the global one). :class:`PersonalClient` is a
:class:`~fedloom.torch.TorchClient` that runs one of them; fairness-aware aggregation (q-FedAvg) is
a strategy, :class:`fedloom.strategies.qfedavg.QFedAvg`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedloom.core.lazy import lazy_exports
from fedloom.personalization.registry import PERSONALIZATIONS

if TYPE_CHECKING:
    from fedloom.personalization.apfl import APFL
    from fedloom.personalization.base import Personalization, head_names
    from fedloom.personalization.client import PersonalClient
    from fedloom.personalization.ditto import Ditto
    from fedloom.personalization.fedper import FedPer
    from fedloom.personalization.fedrep import FedRep
    from fedloom.personalization.finetune import FineTune

__getattr__, __dir__ = lazy_exports(__name__, {
    "Personalization": "fedloom.personalization.base",
    "head_names": "fedloom.personalization.base",
    "PersonalClient": "fedloom.personalization.client",
    "Ditto": "fedloom.personalization.ditto",
    "APFL": "fedloom.personalization.apfl",
    "FedPer": "fedloom.personalization.fedper",
    "FedRep": "fedloom.personalization.fedrep",
    "FineTune": "fedloom.personalization.finetune",
})

__all__ = ["APFL", "Ditto", "FedPer", "FedRep", "FineTune", "PERSONALIZATIONS", "PersonalClient", "Personalization",
           "build_method", "head_names"]


def build_method(options: Any) -> Personalization | None:
    """The method ``options`` selects (a :class:`~fedloom.personalization.options.PersonalizationOptions`), or
    ``None``."""
    return PERSONALIZATIONS.get(options.personalization)(options)  # type: ignore[no-any-return]
