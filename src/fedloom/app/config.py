"""The run configuration: one section per feature, loaded from TOML, overridden by flags.

Each feature owns the section of settings it reads (:class:`~fedloom.data.options.DataOptions`,
:class:`~fedloom.privacy.options.PrivacyOptions`, ...); :class:`RunConfig` only composes them and
adds the cross-feature rules of :mod:`fedloom.app.rules`. Every field of every section is a TOML key
and a ``--flag`` (the field name with dashes); field names are unique across sections, so a key
also works outside its table, and flat TOML files keep working.

Sections and their TOML tables: ``[data]``, ``[training]``, ``[federation]``, ``[algorithm]``,
``[scenarios]``, ``[execution]``, ``[privacy]``, ``[communication]``, ``[encryption]``, ``[run]``,
``[tracking]``, ``[ledger]``, ``[asynchrony]``, ``[heterogeneity]``, ``[sklearn]``, ``[trees]`` and
``[personal]``.

Example:
    >>> cfg = RunConfig(dataset="iris", clients=3)
    >>> cfg.validate()
    >>> cfg.federation.rounds, cfg.data.dataset
    (20, 'iris')
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedloom.backends.options import ExecutionOptions
from fedloom.compression.options import CompressionOptions
from fedloom.core.options import option
from fedloom.data.options import DataOptions
from fedloom.engine.options import AsyncOptions, FederationOptions
from fedloom.errors import ConfigError
from fedloom.ledger.options import LedgerOptions
from fedloom.personalization.options import PersonalizationOptions
from fedloom.privacy.he.options import HEOptions
from fedloom.privacy.options import PrivacyOptions
from fedloom.scenarios.options import HeterogeneityOptions, ScenarioOptions
from fedloom.sklearn.options import SklearnOptions
from fedloom.strategies.options import StrategyOptions
from fedloom.torch.options import TrainingOptions
from fedloom.tracking.options import TrackingOptions
from fedloom.trees.options import TreeOptions

__all__ = ["RunConfig", "RunOptions", "SECTIONS", "load_config", "config_fields", "config_from_mapping",
           "read_toml", "section_of"]


@dataclass
class RunOptions:
    """``[run]``: seed, output directory, resume and console output of the run itself."""

    seed: int = option(0, "Seed for data split, sampling and training (same seed, same numbers).")
    out: str = option("", "Run directory (default: a new folder under runs/).")
    resume: bool = option(False, "Resume from the checkpoint in --out if there is one.")
    overwrite: bool = option(False, "Replace the run already in --out (without it, and without --resume, an "
                             "existing run there is refused).")
    progress: bool = option(True, "Show a progress bar.")
    plugins: str = option("", "Comma-separated modules to import first, so that they register their strategies, "
                          "codecs, backends, ... (third-party packages can use entry points instead).")

    def validate(self) -> None:
        """Nothing to check beyond types."""


SECTIONS: dict[str, type] = {
    "data": DataOptions,
    "training": TrainingOptions,
    "federation": FederationOptions,
    "algorithm": StrategyOptions,
    "scenarios": ScenarioOptions,
    "execution": ExecutionOptions,
    "privacy": PrivacyOptions,
    "communication": CompressionOptions,
    "encryption": HEOptions,
    "run": RunOptions,
    "tracking": TrackingOptions,
    "ledger": LedgerOptions,
    "asynchrony": AsyncOptions,
    "heterogeneity": HeterogeneityOptions,
    "sklearn": SklearnOptions,
    "trees": TreeOptions,
    "personal": PersonalizationOptions,
}
"""Section name (TOML table, attribute of :class:`RunConfig`) -> the dataclass that owns it."""

_FIELDS: dict[str, tuple[str, dataclasses.Field]] = {
    f.name: (section, f) for section, kind in SECTIONS.items() for f in dataclasses.fields(kind)
}
assert len(_FIELDS) == sum(len(dataclasses.fields(k)) for k in SECTIONS.values()), "field names must be unique"


def section_of(name: str) -> str:
    """The section that owns field ``name``."""
    return _FIELDS[name][0]


class RunConfig:
    """Everything that defines a run: one typed section per feature.

    Construct it from field names (``RunConfig(dataset="iris", dp="central")``) or from whole
    sections (``RunConfig(privacy=PrivacyOptions(dp="central"))``). Fields read as
    ``cfg.privacy.dp``; the flat ``cfg.dp`` also works (every field name is unique).
    """

    data: DataOptions
    training: TrainingOptions
    federation: FederationOptions
    algorithm: StrategyOptions
    scenarios: ScenarioOptions
    execution: ExecutionOptions
    privacy: PrivacyOptions
    communication: CompressionOptions
    encryption: HEOptions
    run: RunOptions
    tracking: TrackingOptions
    ledger: LedgerOptions
    asynchrony: AsyncOptions
    heterogeneity: HeterogeneityOptions
    sklearn: SklearnOptions
    trees: TreeOptions
    personal: PersonalizationOptions

    def __init__(self, **values: Any) -> None:
        sections: dict[str, Any] = {}
        flat: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for key, value in values.items():
            if key in SECTIONS:
                if not isinstance(value, SECTIONS[key]):
                    raise ConfigError(f"section {key!r} must be a {SECTIONS[key].__name__}, got {type(value).__name__}")
                sections[key] = value
            elif key in _FIELDS:
                flat[_FIELDS[key][0]][key] = value
            else:
                _check_keys({key: value}, "RunConfig arguments")
        for name, kind in SECTIONS.items():
            base = sections.get(name) or kind()
            object.__setattr__(self, name, dataclasses.replace(base, **flat[name]) if flat[name] else base)

    # -- flat access (every field name is unique across sections) --------------------------
    def __getattr__(self, name: str) -> Any:
        entry = _FIELDS.get(name)
        if entry is None:
            raise AttributeError(f"RunConfig has no field or section {name!r}")
        return getattr(object.__getattribute__(self, entry[0]), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in SECTIONS:
            object.__setattr__(self, name, value)
        elif name in _FIELDS:
            setattr(getattr(self, _FIELDS[name][0]), name, value)
        else:
            raise AttributeError(f"RunConfig has no field or section {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunConfig) and self.to_nested() == other.to_nested()

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.to_dict().items() if v != _FIELDS[k][1].default}
        return f"RunConfig({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # -- validation and conversion -------------------------------------------------------------
    def validate(self) -> None:
        """Check every section, then the rules between features; raise :class:`ConfigError` if any fails."""
        from fedloom.app.rules import check_rules
        from fedloom.core.registry import load_plugins

        load_plugins([m.strip() for m in self.run.plugins.split(",") if m.strip()])
        for name in SECTIONS:
            getattr(self, name).validate()
        check_rules(self)

    def to_dict(self) -> dict[str, Any]:
        """Every field, flat (``{"dataset": "digits", ...}``): what ``summary.json`` records."""
        return {k: v for name in SECTIONS for k, v in dataclasses.asdict(getattr(self, name)).items()}

    def to_nested(self) -> dict[str, dict[str, Any]]:
        """Every field by section (``{"data": {"dataset": ...}, ...}``): what ``config.toml`` holds."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` (field names) applied; unknown keys raise :class:`ConfigError`."""
        _check_keys(changes, "override")
        return RunConfig(**{**self.to_dict(), **changes})


def config_fields() -> list[dataclasses.Field]:
    """Every field of every section, in declaration order (what the CLI turns into flags)."""
    return [f for _, f in _FIELDS.values()]


def _check_keys(data: dict[str, Any], source: str) -> None:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} in {source}; valid keys: {sorted(_FIELDS)}")


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = type(_FIELDS[name][1].default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name} must be true or false, got {value!r}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and name in ("plugins", "labels") and isinstance(value, list):
        return ",".join(str(v) for v in value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{source}: {name} must be {kind.__name__}, got {value!r}")
    return value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a :class:`ConfigError` naming it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _flatten(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """TOML keys by field name: section tables (``[privacy]``), any other table (kept for readability,
    e.g. ``[train]``) and top-level keys all map to the field of that name."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for name, item in items:
            if isinstance(item, dict):
                raise ConfigError(f"{source}: nested table {key}.{name} is not a config section")
            if name in flat:
                raise ConfigError(f"{source}: {name} is set twice")
            flat[name] = item
    _check_keys(flat, source)
    return {k: _coerce(k, v, source) for k, v in flat.items()}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                ignore_tables: tuple[str, ...] = ()) -> RunConfig:
    """Defaults, then the TOML file at ``path``, then ``overrides`` (``None`` values ignored); validated.

    ``ignore_tables``: tables of the file that are not experiment keys (a deployment's ``server``
    and ``client``)."""
    raw = {k: v for k, v in read_toml(path).items() if k not in ignore_tables} if path is not None else {}
    values = _flatten(raw, str(path))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    _check_keys(values, "overrides")
    if values.get("group_column") and "clients" not in values and str(values.get("dataset", "")).endswith(
            (".csv", ".npz")):  # one client per group, unless --clients says
        from fedloom.data.datasets import count_groups

        values["clients"] = count_groups(str(values.get("dataset", "")), str(values["group_column"]))
    cfg = RunConfig(**values)
    cfg.validate()
    return cfg


def config_from_mapping(values: dict[str, Any], source: str) -> RunConfig:
    """A validated :class:`RunConfig` from already-parsed TOML keys (tables as in :func:`load_config`)."""
    cfg = RunConfig(**_flatten(values, source))
    cfg.validate()
    return cfg
