"""The personalization registry (``--personalization``): ``(options: PersonalizationOptions) -> method | None``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedloom.core.registry import Registry

__all__ = ["PERSONALIZATIONS"]

PERSONALIZATIONS: Registry[Callable[[Any], Any]] = Registry("personalization", plural="personalizations")
"""Personalization methods by name; each entry builds the client-side method from the options
(``none`` builds ``None``: the plain global model). The built-ins are registered lazily, so listing
them (``--help``) and validating a config import no torch."""


def _none(options: Any) -> None:
    return None


PERSONALIZATIONS.register("none", _none, help="No personalization: every client uses the global model.")
PERSONALIZATIONS.register_lazy("finetune", "fedloom.personalization.finetune:build",
                               help="k local SGD steps from the global model before each evaluation.")
PERSONALIZATIONS.register_lazy("fedper", "fedloom.personalization.fedper:build",
                               help="Shared body, personal head (Arivazhagan et al. 2019).")
PERSONALIZATIONS.register_lazy("fedrep", "fedloom.personalization.fedrep:build",
                               help="FedPer with head-then-body local training (Collins et al. 2021).")
PERSONALIZATIONS.register_lazy("ditto", "fedloom.personalization.ditto:build",
                               help="A personal model regularized towards the global one (Li et al. 2021).")
PERSONALIZATIONS.register_lazy("apfl", "fedloom.personalization.apfl:build",
                               help="A local model mixed with the global one, adaptive weight (Deng et al. 2020).")
