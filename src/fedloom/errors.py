"""Exceptions fedloom raises on purpose. Each carries a message meant for the user."""

from __future__ import annotations


class FedloomError(Exception):
    """Base class of every error fedloom raises deliberately."""


class ConfigError(FedloomError, ValueError):
    """A configuration value (from TOML, flags or arguments) is invalid."""


class ValidationError(FedloomError, ValueError):
    """An inbound payload (parameters, update, message) does not have the expected form."""


class RoundFailedError(FedloomError, RuntimeError):
    """A round could not be completed (e.g. too few clients returned a valid result)."""


class StopTraining(FedloomError):
    """Raised by an observer to end a run cleanly after the current round (e.g. privacy budget)."""
