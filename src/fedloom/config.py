"""Typed run configuration: defaults, TOML files and command-line overrides.

One flat dataclass: every field is a TOML key and a ``--flag`` (underscores become dashes). The
CLI is generated from the fields, so a new option is one field with a ``help`` text.

Example:
    >>> cfg = RunConfig(dataset="iris", clients=3)
    >>> cfg.validate()
    >>> cfg.rounds
    20
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedloom.errors import ConfigError

__all__ = ["RunConfig", "load_config", "config_fields"]


def opt(default: Any, help: str, **meta: Any) -> Any:  # noqa: A002 - "help" reads best at call sites
    """A config field with a help text (shown by ``fedloom run --help``)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class RunConfig:
    """Everything that defines a simulation run. See ``fedloom run --help`` for each field."""

    # -- data -------------------------------------------------------------------------------
    dataset: str = opt("digits", "Bundled dataset (digits, breast_cancer, wine, iris, diabetes, mnist) "
                       "or a path to a .csv/.npz file.")
    target_column: str = opt("target", "Label column of a CSV dataset.")
    group_column: str = opt("", "Natural partition column of a CSV dataset (for --partition column).")
    test_fraction: float = opt(0.2, "Fraction of the data held by the server for central evaluation.")
    client_test_fraction: float = opt(0.2, "Fraction of each client's data kept for federated evaluation.")
    partition: str = opt("dirichlet", "How data is split: iid, dirichlet, shards, quantity, column.")
    alpha: float = opt(0.5, "Dirichlet concentration for dirichlet/quantity (smaller = more skew).")
    shards_per_client: int = opt(2, "Shards per client for --partition shards.")
    # -- model and local training -----------------------------------------------------------
    model: str = opt("mlp", "Model: linear, logistic, mlp, cnn, or package.module:factory.")
    hidden: int = opt(128, "Hidden units of the built-in mlp.")
    local_epochs: int = opt(1, "Local epochs per round.")
    batch_size: int = opt(16, "Local minibatch size.")
    lr: float = opt(0.05, "Client learning rate.")
    optimizer: str = opt("sgd", "Client optimizer: sgd or adam.")
    momentum: float = opt(0.0, "SGD momentum of the client optimizer.")
    # -- federation -------------------------------------------------------------------------
    clients: int = opt(10, "Number of simulated clients.")
    rounds: int = opt(20, "Number of federated rounds.")
    fraction: float = opt(1.0, "Fraction of clients sampled for training each round, in (0, 1].")
    min_clients: int = opt(1, "Minimum clients sampled per round.")
    fraction_evaluate: float = opt(0.0, "Fraction of clients for federated evaluation (0 = central only).")
    strategy: str = opt("fedavg", "Aggregation strategy.")
    weighted: bool = opt(True, "Weight client updates by their number of examples.")
    eval_every: int = opt(1, "Evaluate every N rounds (and after the last).")
    # -- execution --------------------------------------------------------------------------
    backend: str = opt("inline", "Where clients run: inline (in-process, one by one), vectorized (a whole "
                       "cohort at once with torch.func), ray (Ray actors, local or a cluster).")
    seed: int = opt(0, "Seed for data split, sampling and training (same seed, same numbers).")
    out: str = opt("", "Run directory (default: a new folder under runs/).")
    resume: bool = opt(False, "Resume from the checkpoint in --out if there is one.")
    progress: bool = opt(True, "Show a progress bar.")
    # -- backends: Ray --------------------------------------------------------------------------
    ray_address: str = opt("", "Ray cluster to join (e.g. auto or ray://head:10001); empty starts a local Ray.")
    ray_num_cpus: int = opt(0, "CPUs of the local Ray started by --backend ray (0 = all cores).")
    ray_cpus_per_client: float = opt(1.0, "CPUs reserved by each Ray worker running clients.")
    ray_gpus_per_client: float = opt(0.0, "GPUs (fractions allowed) reserved by each Ray worker.")

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a clear message for any invalid value."""
        from fedloom.backends import BACKENDS
        from fedloom.data import DATASETS, PARTITIONERS
        from fedloom.models import MODELS
        from fedloom.strategies import STRATEGIES

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(
            self.dataset in DATASETS or self.dataset.endswith((".csv", ".npz")),
            f"unknown dataset {self.dataset!r}; choose one of {sorted(DATASETS)} or a .csv/.npz path",
        )
        need(self.model in MODELS or ":" in self.model,
             f"unknown model {self.model!r}; choose one of {sorted(MODELS)} or package.module:factory")
        need(self.strategy in STRATEGIES, f"unknown strategy {self.strategy!r}; choose one of {sorted(STRATEGIES)}")
        need(self.partition in PARTITIONERS,
             f"unknown partition {self.partition!r}; choose one of {list(PARTITIONERS)}")
        need(self.backend in BACKENDS, f"unknown backend {self.backend!r}; choose one of {list(BACKENDS)}")
        need(self.optimizer in ("sgd", "adam"), f"unknown optimizer {self.optimizer!r}; choose sgd or adam")
        need(self.clients >= 1, f"clients must be >= 1, got {self.clients}")
        need(self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}")
        need(0.0 < self.fraction <= 1.0, f"fraction must be in (0, 1], got {self.fraction}")
        need(0.0 <= self.fraction_evaluate <= 1.0, f"fraction_evaluate must be in [0, 1], got {self.fraction_evaluate}")
        need(self.min_clients >= 1, f"min_clients must be >= 1, got {self.min_clients}")
        need(self.min_clients <= self.clients,
             f"min_clients ({self.min_clients}) cannot exceed clients ({self.clients})")
        need(self.alpha > 0, f"alpha must be > 0, got {self.alpha}")
        need(self.local_epochs >= 1, f"local_epochs must be >= 1, got {self.local_epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}")
        need(0.0 < self.test_fraction < 1.0, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        need(0.0 <= self.client_test_fraction < 1.0,
             f"client_test_fraction must be in [0, 1), got {self.client_test_fraction}")
        need(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        need(self.ray_num_cpus >= 0, f"ray_num_cpus must be >= 0, got {self.ray_num_cpus}")
        need(self.ray_cpus_per_client > 0, f"ray_cpus_per_client must be > 0, got {self.ray_cpus_per_client}")
        need(self.ray_gpus_per_client >= 0, f"ray_gpus_per_client must be >= 0, got {self.ray_gpus_per_client}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (unknown keys raise :class:`ConfigError`)."""
        _check_keys(changes, "override")
        return dataclasses.replace(self, **changes)


def config_fields() -> list[dataclasses.Field]:
    """The fields of :class:`RunConfig`, in declaration order."""
    return list(dataclasses.fields(RunConfig))


def _check_keys(data: dict[str, Any], source: str) -> None:
    known = {f.name for f in config_fields()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} in {source}; valid keys: {sorted(known)}")


def _coerce(name: str, value: Any, source: str) -> Any:
    fld = next(f for f in config_fields() if f.name == name)
    kind = type(fld.default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name} must be true or false, got {value!r}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{source}: {name} must be {kind.__name__}, got {value!r}")
    return value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the TOML file at ``path``, then ``overrides``; validated.

    The TOML may be flat or group keys under tables (``[data]``, ``[train]``, ...): table names
    are only for readability, keys are the field names.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        for key, value in raw.items():
            if isinstance(value, dict):
                values.update(value)
            else:
                values[key] = value
        _check_keys(values, str(path))
        values = {k: _coerce(k, v, str(path)) for k, v in values.items()}
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    _check_keys(values, "overrides")
    cfg = RunConfig(**values)
    cfg.validate()
    return cfg
