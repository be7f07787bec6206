"""Turn the privacy fields of a :class:`~fedloom.config.RunConfig` into wrappers around a simulation.

``build_simulation`` and ``run_simulation`` call these at small marked sites: clients are wrapped
(:class:`LocalDPClient`, :class:`SecAggClient`), the strategy is wrapped (:class:`CentralDP`), the
pool is wrapped (:class:`SecAggPool`), and an :class:`EpsilonObserver` writes ``epsilon`` into every
round record. Nothing here changes what the wrapped parts do when privacy is off.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fedloom.backends.base import ClientPool
from fedloom.core.client import Client
from fedloom.core.client_state import ClientState
from fedloom.core.strategy import Strategy
from fedloom.errors import ConfigError
from fedloom.privacy.accountant import ACCOUNTANTS, EpsilonObserver, epsilon, max_rounds, noise_for_epsilon
from fedloom.privacy.dp import CentralDP, LocalDPClient
from fedloom.privacy.opacus import DPSGD
from fedloom.privacy.secagg import Quantizer, SecAggClient, SecAggPool
from fedloom.strategies.aggregators import WeightedMean
from fedloom.strategies.fedavg import FedAvg

if TYPE_CHECKING:
    from fedloom.config import RunConfig
    from fedloom.engine import RunResult

__all__ = [
    "DP_MODES",
    "dp_sgd_settings",
    "privacy_observers",
    "privacy_summary",
    "resolve_noise",
    "sampling_rate",
    "validate_privacy",
    "wrap_client",
    "wrap_pool",
    "wrap_strategy",
]

DP_MODES = ("none", "central", "central-adaptive", "local")
_SECAGG_DEFAULT_CLIP = 100.0
_DP_DEFAULT_CLIP = 1.0


def validate_privacy(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` for invalid privacy settings."""
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    need(cfg.dp in DP_MODES, f"unknown --dp {cfg.dp!r}; choose one of {list(DP_MODES)}")
    need(cfg.noise_multiplier >= 0, f"noise_multiplier must be >= 0, got {cfg.noise_multiplier}")
    need(cfg.clip >= 0, f"clip must be >= 0 (0 = default), got {cfg.clip}")
    need(cfg.target_epsilon >= 0, f"target_epsilon must be >= 0 (0 = none), got {cfg.target_epsilon}")
    need(0 < cfg.delta < 1, f"delta must be in (0, 1), got {cfg.delta}")
    need(0 < cfg.adaptive_quantile < 1, f"adaptive_quantile must be in (0, 1), got {cfg.adaptive_quantile}")
    need(cfg.accountant in ACCOUNTANTS, f"unknown accountant {cfg.accountant!r}; choose one of {list(ACCOUNTANTS)}")
    need(cfg.secagg_neighbours >= -1, f"secagg_neighbours must be >= -1, got {cfg.secagg_neighbours}")
    need(cfg.secagg_threshold >= 0, f"secagg_threshold must be >= 0, got {cfg.secagg_threshold}")
    need(2 <= cfg.secagg_bits <= 64, f"secagg_bits must be in 2..64, got {cfg.secagg_bits}")
    need(cfg.secagg_weight_cap >= 0, f"secagg_weight_cap must be >= 0, got {cfg.secagg_weight_cap}")
    need(cfg.dp_sgd_noise_multiplier >= 0 and cfg.dp_sgd_max_grad_norm > 0,
         "dp_sgd_noise_multiplier must be >= 0 and dp_sgd_max_grad_norm > 0")
    if cfg.dp != "none":
        need(cfg.noise_multiplier > 0 or cfg.target_epsilon > 0,
             f"--dp {cfg.dp} needs --noise-multiplier > 0 or a --target-epsilon to calibrate it")
    else:
        need(cfg.target_epsilon == 0, "--target-epsilon needs --dp central, central-adaptive or local")
    if cfg.secagg:
        need(cfg.clients >= 2, "--secagg needs at least 2 clients")
        Quantizer(cfg.secagg_bits, cohort_size(cfg), 1.0)  # a ring too small for the cohort is refused now


def _clip(cfg: RunConfig) -> float:
    return cfg.clip or (_DP_DEFAULT_CLIP if cfg.dp != "none" else _SECAGG_DEFAULT_CLIP)


def cohort_size(cfg: RunConfig) -> int:
    """Clients sampled per round (fixed-size sampling, as ``sample_clients`` does)."""
    return min(cfg.clients, max(min(cfg.min_clients, cfg.clients), math.ceil(cfg.fraction * cfg.clients - 1e-9)))


def sampling_rate(cfg: RunConfig) -> float:
    """Accounted sampling rate: cohort / population for central DP, 1 for local DP."""
    return 1.0 if cfg.dp == "local" else cohort_size(cfg) / cfg.clients


@lru_cache(maxsize=32)
def _calibrate(target: float, q: float, rounds: int, delta: float, method: str) -> float:
    return noise_for_epsilon(target_epsilon=target, sampling_rate=q, steps=rounds, delta=delta, method=method)


def resolve_noise(cfg: RunConfig) -> float:
    """The noise multiplier of the run: as given, or calibrated to spend ``--target-epsilon`` in ``--rounds``."""
    if cfg.dp == "none":
        return 0.0
    if cfg.noise_multiplier > 0:
        return cfg.noise_multiplier
    return _calibrate(cfg.target_epsilon, sampling_rate(cfg), cfg.rounds, cfg.delta, cfg.accountant)


def dp_sgd_settings(cfg: RunConfig) -> DPSGD | None:
    """The DP-SGD settings for :class:`~fedloom.TorchClient` (``None`` without ``--dp-sgd``)."""
    if not cfg.dp_sgd:
        return None
    return DPSGD(noise_multiplier=cfg.dp_sgd_noise_multiplier, max_grad_norm=cfg.dp_sgd_max_grad_norm,
                 delta=cfg.delta)


def wrap_client(cfg: RunConfig, client: Client, state: ClientState) -> Client:
    """Local DP, then SecAgg+ (so noise is added before masking), around one client."""
    if cfg.dp == "local":
        client = LocalDPClient(client, clip=_clip(cfg), noise_multiplier=resolve_noise(cfg))
    if cfg.secagg:
        client = SecAggClient(client, state=state)
    return client


def wrap_strategy(cfg: RunConfig, strategy: Strategy) -> Strategy:
    """Central DP around the strategy; refuse strategies that cannot run on a secure sum."""
    if cfg.secagg and not (isinstance(strategy, FedAvg) and type(strategy.aggregator) is WeightedMean):
        raise ConfigError(
            f"--secagg gives the server only the sum of the updates; strategy {cfg.strategy!r} with aggregator "
            f"{getattr(strategy, 'aggregator', None)!r} needs individual updates (robust aggregators cannot run "
            "on a single sum). Use a FedAvg-family strategy with the weighted mean."
        )
    if cfg.dp in ("central", "central-adaptive"):
        if not isinstance(strategy, FedAvg):
            raise ConfigError(f"--dp {cfg.dp} wraps FedAvg-family strategies, not {cfg.strategy!r}")
        return CentralDP(strategy, noise_multiplier=resolve_noise(cfg), clip=_clip(cfg),
                         adaptive=cfg.dp == "central-adaptive", target_quantile=cfg.adaptive_quantile)
    return strategy


def wrap_pool(cfg: RunConfig, pool: ClientPool, *, num_parameters: int) -> ClientPool:
    """SecAgg+ around the pool. Under local DP the quantizer's clip makes room for the client's noise."""
    if not cfg.secagg:
        return pool
    clip = _clip(cfg)
    if cfg.dp == "local":  # the noisy update is about clip * sqrt(1 + z^2 d) long; leave 2x headroom
        clip = 2 * clip * math.sqrt(1 + resolve_noise(cfg) ** 2 * num_parameters)
    return SecAggPool(pool, neighbours=cfg.secagg_neighbours, threshold=cfg.secagg_threshold, bits=cfg.secagg_bits,
                      clip=clip, weight_cap=cfg.secagg_weight_cap if cfg.weighted else 0.0, seed=cfg.seed)


def privacy_observers(cfg: RunConfig) -> list[EpsilonObserver]:
    """The epsilon reporter (first in the observer list) or nothing; refuses a run that would overspend."""
    if cfg.dp == "none":
        return []
    z, q = resolve_noise(cfg), sampling_rate(cfg)
    target = cfg.target_epsilon or None
    if target is not None:
        planned = epsilon(noise_multiplier=z, sampling_rate=q, steps=cfg.rounds, delta=cfg.delta, method=cfg.accountant)
        if planned > target * (1 + 1e-6):
            fits = max_rounds(noise_multiplier=z, sampling_rate=q, delta=cfg.delta, target_epsilon=target,
                              method=cfg.accountant, limit=cfg.rounds)
            raise ConfigError(
                f"{cfg.rounds} rounds at noise multiplier {z:g} (sampling rate {q:g}) spend epsilon {planned:.3f} > "
                f"--target-epsilon {target:g}; at most {fits} rounds fit. Lower --rounds, raise --noise-multiplier, "
                "or leave --noise-multiplier at 0 to calibrate it to the target."
            )
    return [EpsilonObserver(z, q, cfg.delta, cfg.accountant, target * (1 + 1e-6) if target else None, cfg.rounds)]


def privacy_summary(cfg: RunConfig, result: RunResult) -> dict[str, Any]:
    """``{"privacy": {...}}`` for ``summary.json`` (empty without DP)."""
    if cfg.dp == "none" or not result.history:
        return {}
    last = result.history[-1].metrics
    return {"privacy": {
        "epsilon": float(last.get("epsilon", math.nan)), "delta": cfg.delta, "mechanism": cfg.dp,
        "noise_multiplier": resolve_noise(cfg), "sampling_rate": sampling_rate(cfg), "accountant": cfg.accountant,
        "rounds": len(result.history), "secagg": cfg.secagg,
    }}
