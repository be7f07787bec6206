"""Moving parameters between a ``torch.nn.Module`` and :class:`~fedloom.core.parameters.Parameters`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedloom.core.parameters import Parameters

__all__ = ["module_parameters", "load_parameters"]


def module_parameters(module: nn.Module) -> Parameters:
    """A copy of the module's ``state_dict`` (weights and buffers) as numpy arrays."""
    return Parameters({k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()})


def load_parameters(module: nn.Module, parameters: Parameters) -> None:
    """Copy ``parameters`` into the module in place (names and shapes must match)."""
    state = module.state_dict()
    missing = [k for k in state if k not in parameters]
    if missing:
        raise KeyError(f"parameters lack entries for {missing}")
    with torch.no_grad():
        for name, tensor in state.items():
            tensor.copy_(torch.from_numpy(np.asarray(parameters[name])))
