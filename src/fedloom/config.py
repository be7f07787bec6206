"""Compatibility: the run configuration moved to :mod:`fedloom.app.config`; import it from there
(or ``from fedloom import RunConfig``)."""

from fedloom.app.config import RunConfig, config_fields, config_from_mapping, load_config, read_toml

__all__ = ["RunConfig", "config_fields", "config_from_mapping", "load_config", "read_toml"]
