"""Core types: parameters, client interface, messages and boundary validation."""

from fedloom.core.client import Client, ClientFn, ClientWrapper
from fedloom.core.client_state import ClientState, ClientStateStore
from fedloom.core.parameters import ArraySpec, Parameters, ParamSpec
from fedloom.core.types import (
    ClientId,
    Config,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Metrics,
    Scalar,
)
from fedloom.core.validation import check_evaluate_result, check_fit_result, check_update

__all__ = [
    "ArraySpec",
    "Client",
    "ClientFn",
    "ClientId",
    "ClientState",
    "ClientStateStore",
    "ClientWrapper",
    "Config",
    "EvaluateIns",
    "EvaluateRes",
    "FitIns",
    "FitRes",
    "Metrics",
    "ParamSpec",
    "Parameters",
    "Scalar",
    "check_evaluate_result",
    "check_fit_result",
    "check_update",
]
