"""Typed option sections: each feature declares the settings it owns as a small dataclass.

A section is a plain dataclass whose fields are made with :func:`option` (default + help text +
optional registry of valid names) and whose ``validate()`` checks its own ranges. The app layer
(:mod:`fedloom.app.config`) composes the sections into one run configuration, maps TOML tables to
them and turns every field into a command-line flag, so a new option is one field in the section
of the feature it configures.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class ToyOptions:
    ...     rounds: int = option(3, "How many rounds.")
    ...     def validate(self) -> None:
    ...         need(self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}")
    >>> ToyOptions(rounds=0).validate()
    Traceback (most recent call last):
        ...
    fedloom.errors.ConfigError: rounds must be >= 1, got 0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

from fedloom.errors import ConfigError

__all__ = ["option", "need"]


def option(default: Any, help: str, *, choices: Callable[[], Any] | None = None,  # noqa: A002
           flag: str | None = None) -> Any:
    """A section field with its help text (shown by ``--help``).

    Args:
        default: The default value; its type is the field's type on the command line and in TOML.
        help: One or two sentences for ``--help``.
        choices: A callable returning the :class:`~fedloom.core.registry.Registry` (or any iterable
            of names) of valid values; ``--help`` lists them, so help never drifts from the code.
        flag: The command-line flag, if not ``--`` + the field name with dashes.
    """
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if flag is not None:
        meta["flag"] = flag
    return field(default=default, metadata=meta)


def need(cond: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``cond`` holds."""
    if not cond:
        raise ConfigError(message)

