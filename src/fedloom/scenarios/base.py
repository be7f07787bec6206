"""The client wrapper all scenarios build on (defined in :mod:`fedloom.core.client`)."""

from fedloom.core.client import ClientWrapper

__all__ = ["ClientWrapper"]
