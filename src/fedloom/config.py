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

__all__ = ["RunConfig", "load_config", "config_fields", "config_from_mapping"]


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
    lr: float = opt(0.1, "Client learning rate.")
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
    # -- strategy hyperparameters and robust aggregation (see docs/strategies.md) ---------------
    aggregator: str = opt("mean", "How client updates combine, for any strategy: mean, median, trimmed_mean, "
                          "krum, multikrum, bulyan.")
    clip_update_norm: float = opt(0.0, "Norm bounding: clip each client update to this L2 norm before "
                                  "aggregating (0 = off).")
    trim_beta: float = opt(0.1, "trimmed_mean: fraction of values trimmed from each end per coordinate, in [0, 0.5).")
    byzantine_f: int = opt(1, "krum/multikrum/bulyan: Byzantine clients tolerated (Krum needs >= 2f+3 results "
                           "per round, Bulyan >= 4f+3).")
    multikrum_m: int = opt(0, "multikrum: updates averaged (0 = results - byzantine_f).")
    proximal_mu: float = opt(0.01, "fedprox: proximal coefficient mu of mu/2 ||w - w_global||^2.")
    server_lr: float = opt(0.0, "Server learning rate of fedavgm/fedadam/fedyogi/fedadagrad/scaffold "
                           "(0 = the strategy's default: 1.0 for fedavgm and scaffold, 0.01 for fedadam/fedyogi, "
                           "0.1 for fedadagrad).")
    server_momentum: float = opt(0.9, "fedavgm: server momentum in [0, 1).")
    beta1: float = opt(0.9, "fedadam/fedyogi/fedadagrad: first-moment decay in [0, 1).")
    beta2: float = opt(0.99, "fedadam/fedyogi: second-moment decay in [0, 1).")
    tau: float = opt(1e-3, "fedadam/fedyogi/fedadagrad: adaptivity (> 0; larger is closer to momentum SGD).")
    # -- simulated stragglers and attacks (fedloom.scenarios) ------------------------------------
    attack: str = opt("none", "Malicious client behaviour: none, sign_flip, gaussian, label_flip, alie.")
    attackers: float = opt(0.0, "Fraction of clients that are malicious (fixed for the run by --seed).")
    attack_scale: float = opt(4.0, "sign_flip: the update is multiplied by -scale; gaussian: the update is "
                              "N(0, scale^2) noise.")
    stragglers: float = opt(0.0, "Fraction of sampled clients that straggle in each round, in [0, 1].")
    straggler_mode: str = opt("epochs", "epochs: a straggler trains a random number of epochs in [1, E) and is "
                              "kept by strategies that accept partial work (fedprox), dropped by others; "
                              "drop: a straggler always fails.")
    # -- execution --------------------------------------------------------------------------
    backend: str = opt("inline", "Where clients run: inline (in-process, one by one), vectorized (a whole "
                       "cohort at once with torch.func), ray (Ray actors, local or a cluster).")
    seed: int = opt(0, "Seed for data split, sampling and training (same seed, same numbers).")
    out: str = opt("", "Run directory (default: a new folder under runs/).")
    resume: bool = opt(False, "Resume from the checkpoint in --out if there is one.")
    progress: bool = opt(True, "Show a progress bar.")
    # -- privacy (fedloom.privacy; docs/privacy.md) -------------------------------------------
    secagg: bool = opt(False, "Secure aggregation (SecAgg+): the server learns only the sum of the updates.")
    secagg_neighbours: int = opt(0, "SecAgg+ neighbours per client: 0 = about 2*log2(n), -1 = complete graph.")
    secagg_threshold: int = opt(0, "Shares needed to recover a secret (0 = a majority of the neighbours).")
    secagg_bits: int = opt(32, "SecAgg ring size 2^bits for the quantized updates (uploads use the narrowest int).")
    secagg_weight_cap: float = opt(1000.0, "SecAgg example weights are min(n, cap)/cap (FedAvg weighting).")
    dp: str = opt("none", "Differential privacy: none, central, central-adaptive, local.")
    noise_multiplier: float = opt(0.0, "DP noise std / clip norm (0 with --target-epsilon: calibrated to it).")
    clip: float = opt(0.0, "L2 clip norm of each client update (0 = 1.0 with DP, 100 for SecAgg alone).")
    adaptive_quantile: float = opt(0.5, "Target quantile of update norms for --dp central-adaptive.")
    target_epsilon: float = opt(0.0, "Privacy budget: refuse to start or stop before exceeding it (0 = none).")
    delta: float = opt(1e-5, "The delta of the reported (epsilon, delta).")
    accountant: str = opt("rdp", "Privacy accountant: rdp, pld (dp-accounting) or prv (Opacus).")
    dp_sgd: bool = opt(False, "Sample-level DP-SGD in local training (Opacus).")
    dp_sgd_noise_multiplier: float = opt(1.0, "DP-SGD noise multiplier (per-sample gradients).")
    dp_sgd_max_grad_norm: float = opt(1.0, "DP-SGD per-sample gradient clip norm.")
    # -- communication: update compression and homomorphic encryption ----------------------
    compression: str = opt("none", "Client update coding: none, fp16, q8, q4 (stochastic quantization) "
                           "or topk (sparsification).")
    topk_fraction: float = opt(0.01, "Share of update entries that --compression topk sends, in (0, 1].")
    error_feedback: bool = opt(True, "Keep each client's coding error and add it to its next update.")
    quant_block: int = opt(0, "Entries sharing one scale in q8/q4 (0 = one scale per tensor).")
    compress_broadcast: bool = opt(False, "Send the global model to clients in float16.")
    he: bool = opt(False, "Aggregate CKKS-encrypted models (TenSEAL); the server never decrypts.")
    he_poly_degree: int = opt(8192, "CKKS polynomial degree: 4096, 8192, 16384 or 32768 (slots = half).")
    he_scale: int = opt(40, "CKKS scale as a power of two, in bits (40 means 2**40).")
    he_keys: str = opt("", "Directory with secret.tenseal/public.tenseal from `fedloom he-keys` "
                       "(default: fresh keys for the run).")
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
        # -- strategy library (issue 3)
        from fedloom.scenarios import ATTACKS, STRAGGLER_MODES
        from fedloom.strategies import AGGREGATORS

        need(self.aggregator in AGGREGATORS,
             f"unknown aggregator {self.aggregator!r}; choose one of {list(AGGREGATORS)}")
        need(self.clip_update_norm >= 0, f"clip_update_norm must be >= 0 (0 = off), got {self.clip_update_norm}")
        need(0.0 <= self.trim_beta < 0.5, f"trim_beta must be in [0, 0.5), got {self.trim_beta}")
        need(self.byzantine_f >= 0, f"byzantine_f must be >= 0, got {self.byzantine_f}")
        need(self.multikrum_m >= 0, f"multikrum_m must be >= 0 (0 = results - byzantine_f), got {self.multikrum_m}")
        need(self.proximal_mu >= 0, f"proximal_mu must be >= 0, got {self.proximal_mu}")
        need(self.server_lr >= 0, f"server_lr must be >= 0 (0 = strategy default), got {self.server_lr}")
        need(0.0 <= self.server_momentum < 1.0, f"server_momentum must be in [0, 1), got {self.server_momentum}")
        need(0.0 <= self.beta1 < 1.0, f"beta1 must be in [0, 1), got {self.beta1}")
        need(0.0 <= self.beta2 < 1.0, f"beta2 must be in [0, 1), got {self.beta2}")
        need(self.tau > 0, f"tau must be > 0, got {self.tau}")
        need(self.attack in ATTACKS, f"unknown attack {self.attack!r}; choose one of {list(ATTACKS)}")
        need(0.0 <= self.attackers < 1.0, f"attackers must be a fraction in [0, 1), got {self.attackers}")
        need(self.attack == "none" or self.attackers > 0,
             f"--attack {self.attack} needs --attackers > 0 (the fraction of malicious clients)")
        need(self.attack_scale > 0, f"attack_scale must be > 0, got {self.attack_scale}")
        need(0.0 <= self.stragglers <= 1.0, f"stragglers must be a fraction in [0, 1], got {self.stragglers}")
        from fedloom.strategies import effective_aggregator

        effective_aggregator(self)  # a robust --strategy alias must not contradict --aggregator
        need(self.straggler_mode in STRAGGLER_MODES,
             f"unknown straggler_mode {self.straggler_mode!r}; choose one of {list(STRAGGLER_MODES)}")
        from fedloom.privacy.setup import validate_privacy  # privacy fields

        validate_privacy(self)
        # -- communication: update compression and homomorphic encryption --
        from fedloom.compression.setup import check_compression
        from fedloom.privacy.he.setup import check_he

        check_compression(self)
        check_he(self)
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


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a :class:`ConfigError` naming it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the TOML file at ``path``, then ``overrides``; validated.

    The TOML may be flat or group keys under tables (``[data]``, ``[train]``, ...): table names
    are only for readability, keys are the field names.
    """
    values: dict[str, Any] = {}
    if path is not None:
        raw = read_toml(path)
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


# -- deployment (fedloom.net): RunConfig keys read from a TOML that also holds other tables ------------
def config_from_mapping(values: dict[str, Any], source: str) -> RunConfig:
    """A validated :class:`RunConfig` from already-parsed TOML keys (tables flattened as in :func:`load_config`)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    _check_keys(flat, source)
    cfg = RunConfig(**{k: _coerce(k, v, source) for k, v in flat.items()})
    cfg.validate()
    return cfg
