"""Privacy wiring: turn the ``[privacy]`` section into the wrappers, observers and summary of a run.

The client-side layers (local DP, SecAgg+) are in :mod:`fedloom.app.layers`; here are the
server-side parts: central DP around the strategy, SecAgg+ around the pool, the epsilon observer
(first, so stores and progress bars see ``epsilon``) and the ``privacy`` block of ``summary.json``.
Nothing here changes what the wrapped parts do when privacy is off.

Noise, DP sampling and SecAgg rounding come from the OS CSPRNG unless
``--dp-insecure-reproducible-noise`` asks for reproducible draws; that run is NOT private, says so
in a warning and records ``"noise": "reproducible (not private)"`` in its summary.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fedloom.app.rules import cohort_size
from fedloom.core.pool import ClientPool
from fedloom.core.strategy import Strategy
from fedloom.errors import ConfigError

if TYPE_CHECKING:
    from fedloom.app.config import RunConfig
    from fedloom.engine import RunResult
    from fedloom.privacy.accountant import EpsilonObserver
    from fedloom.privacy.opacus import DPSGD

__all__ = [
    "accounted_noise",
    "clip_norm",
    "dp_sgd_settings",
    "privacy_observers",
    "privacy_summary",
    "resolve_noise",
    "sampling_rate",
    "wrap_pool",
    "wrap_strategy",
]

log = logging.getLogger(__name__)

_SECAGG_DEFAULT_CLIP = 100.0
_DP_DEFAULT_CLIP = 1.0


def clip_norm(cfg: RunConfig) -> float:
    """The clip norm of DP and SecAgg+ (``--clip``, or the mechanism's default)."""
    return cfg.privacy.clip or (_DP_DEFAULT_CLIP if cfg.privacy.dp != "none" else _SECAGG_DEFAULT_CLIP)


def sampling_rate(cfg: RunConfig) -> float:
    """Planned sampling rate: cohort / population for central DP (Poisson), 1 for local DP.

    A run accounts each round with the rate it really had (see :class:`~fedloom.privacy.EpsilonObserver`);
    this is the rate of the planned schedule, checked before the run starts."""
    return 1.0 if cfg.privacy.dp == "local" else cohort_size(cfg) / cfg.federation.clients


def _local_factor(cfg: RunConfig) -> float:
    """Local DP is accounted on sensitivity 2C (replace one client's data): multiplier z / 2."""
    return 0.5 if cfg.privacy.dp == "local" else 1.0


def accounted_noise(cfg: RunConfig) -> float:
    """The multiplier the accountant charges: noise std / L2 sensitivity (``z``, or ``z / 2`` for local DP)."""
    return resolve_noise(cfg) * _local_factor(cfg)


def noise_description(cfg: RunConfig) -> str:
    """Where the privacy-relevant randomness of the run comes from (the summary's ``noise``)."""
    if cfg.privacy.dp_insecure_reproducible_noise:
        return "reproducible (not private)"
    return "csprng (os.urandom): exact discrete Gaussian (Canonne, Kamath, Steinke 2020)"


def warn_if_not_private(cfg: RunConfig) -> None:
    """Log, loudly, that a run with reproducible noise is not private."""
    if cfg.privacy.dp_insecure_reproducible_noise:
        log.warning("--dp-insecure-reproducible-noise: DP noise, DP sampling and SecAgg rounding are drawn from the "
                    "run and task seeds; anyone who knows the seed can subtract the noise. This run is NOT private.")


@lru_cache(maxsize=32)
def _calibrate(target: float, q: float, rounds: int, delta: float, method: str) -> float:
    from fedloom.privacy.accountant import noise_for_epsilon

    return noise_for_epsilon(target_epsilon=target, sampling_rate=q, steps=rounds, delta=delta, method=method)


def resolve_noise(cfg: RunConfig) -> float:
    """The noise multiplier of the run: as given, or calibrated to spend ``--target-epsilon`` in ``--rounds``."""
    if cfg.privacy.dp == "none":
        return 0.0
    if cfg.privacy.noise_multiplier > 0:
        return cfg.privacy.noise_multiplier
    accounted = _calibrate(
        cfg.privacy.target_epsilon, sampling_rate(cfg), cfg.federation.rounds, cfg.privacy.delta, cfg.privacy.accountant
    )
    return accounted / _local_factor(cfg)


def dp_sgd_settings(cfg: RunConfig) -> DPSGD | None:
    """The DP-SGD settings for :class:`~fedloom.TorchClient` (``None`` without ``--dp-sgd``)."""
    if not cfg.privacy.dp_sgd:
        return None
    from fedloom.privacy.opacus import DPSGD

    return DPSGD(
        noise_multiplier=cfg.privacy.dp_sgd_noise_multiplier,
        max_grad_norm=cfg.privacy.dp_sgd_max_grad_norm,
        delta=cfg.privacy.delta,
        reproducible_noise=cfg.privacy.dp_insecure_reproducible_noise,
    )


def wrap_strategy(cfg: RunConfig, strategy: Strategy) -> Strategy:
    """Central DP around the strategy. The rules refuse configurations it cannot serve; the object
    checks here also guard strategies built in code (a custom aggregator under SecAgg+, ...)."""
    from fedloom.strategies import FedAvg, WeightedMean

    if cfg.privacy.secagg and not (isinstance(strategy, FedAvg) and type(strategy.aggregator) is WeightedMean):
        raise ConfigError(
            f"--secagg gives the server only the sum of the updates; strategy {cfg.algorithm.strategy!r} with "
            f"aggregator {getattr(strategy, 'aggregator', None)!r} needs individual updates (robust aggregators "
            "cannot run on a single sum). Use a FedAvg-family strategy with the weighted mean."
        )
    if cfg.privacy.dp in ("central", "central-adaptive"):
        from fedloom.privacy.accountant import Budget
        from fedloom.privacy.dp import CentralDP

        if not isinstance(strategy, FedAvg):
            raise ConfigError(f"--dp {cfg.privacy.dp} wraps FedAvg-family strategies, not {cfg.algorithm.strategy!r}")
        return CentralDP(
            strategy,
            noise_multiplier=resolve_noise(cfg),
            clip=clip_norm(cfg),
            adaptive=cfg.privacy.dp == "central-adaptive",
            target_quantile=cfg.privacy.adaptive_quantile,
            reproducible_noise=cfg.privacy.dp_insecure_reproducible_noise,
            budget=(Budget(accounted_noise(cfg), cfg.privacy.delta, cfg.privacy.target_epsilon * (1 + 1e-6),
                           cfg.privacy.accountant) if cfg.privacy.target_epsilon else None),
        )
    return strategy


def wrap_pool(cfg: RunConfig, pool: ClientPool, *, num_parameters: int) -> ClientPool:
    """SecAgg+ around the pool. Under local DP the quantizer's clip makes room for the client's noise."""
    if not cfg.privacy.secagg:
        return pool
    from fedloom.privacy.secagg import SecAggPool

    clip = clip_norm(cfg)
    if cfg.privacy.dp == "local":  # the noisy update is about clip * sqrt(1 + z^2 d) long; leave 2x headroom
        clip = 2 * clip * math.sqrt(1 + resolve_noise(cfg) ** 2 * num_parameters)
    return SecAggPool(
        pool,
        neighbours=cfg.privacy.secagg_neighbours,
        threshold=cfg.privacy.secagg_threshold,
        bits=cfg.privacy.secagg_bits,
        clip=clip,
        weight_cap=cfg.privacy.secagg_weight_cap if cfg.federation.weighted and cfg.algorithm.weighting == "examples"
        else 0.0,
        seed=cfg.run.seed if cfg.privacy.dp_insecure_reproducible_noise else None,  # else a CSPRNG graph
    )


def privacy_observers(cfg: RunConfig) -> list[EpsilonObserver]:
    """The epsilon reporter (first in the observer list) or nothing; refuses a run whose planned
    schedule would overspend (the observer then accounts each round at the rate it really had)."""
    warn_if_not_private(cfg)
    if cfg.privacy.dp == "none":
        return []
    from fedloom.privacy.accountant import EpsilonObserver, epsilon, max_rounds

    z, q = accounted_noise(cfg), sampling_rate(cfg)
    target = cfg.privacy.target_epsilon or None
    if target is not None:
        planned = epsilon(
            noise_multiplier=z,
            sampling_rate=q,
            steps=cfg.federation.rounds,
            delta=cfg.privacy.delta,
            method=cfg.privacy.accountant,
        )
        if planned > target * (1 + 1e-6):
            fits = max_rounds(
                noise_multiplier=z,
                sampling_rate=q,
                delta=cfg.privacy.delta,
                target_epsilon=target,
                method=cfg.privacy.accountant,
                limit=cfg.federation.rounds,
            )
            raise ConfigError(
                f"{cfg.federation.rounds} rounds at noise multiplier {resolve_noise(cfg):g} (sampling rate {q:g}) "
                f"spend epsilon {planned:.3f} > "
                f"--target-epsilon {target:g}; at most {fits} rounds fit. Lower --rounds, raise --noise-multiplier, "
                "or leave --noise-multiplier at 0 to calibrate it to the target."
            )
    return [
        EpsilonObserver(
            z,
            q,
            cfg.privacy.delta,
            cfg.privacy.accountant,
            target * (1 + 1e-6) if target else None,
            cfg.federation.rounds,
            ledger=cfg.privacy.dp != "local",
        )
    ]


def privacy_summary(cfg: RunConfig, result: RunResult) -> dict[str, Any]:
    """``{"privacy": {...}}`` for ``summary.json`` (empty without DP)."""
    if cfg.privacy.dp == "none" or not result.history:
        return {}
    last = result.history[-1].metrics
    local = cfg.privacy.dp == "local"
    rates = [h.metrics["dp_sampling_rate"] for h in result.history if "dp_sampling_rate" in h.metrics]
    block: dict[str, Any] = {
        "epsilon": float(last.get("epsilon", math.nan)),
        "delta": cfg.privacy.delta,
        "mechanism": cfg.privacy.dp,
        "noise": noise_description(cfg),
        "noise_multiplier": resolve_noise(cfg),
        "accounted_noise_multiplier": accounted_noise(cfg),
        "neighbouring": ("replace one client's data (sensitivity 2C)" if local
                         else "add or remove one client (sensitivity C)"),
        "sampling": ("every round charged in full (q = 1): the server sees who takes part" if local
                     else "poisson: each available client with probability q, accounted round by round"),
        "sampling_rate": sampling_rate(cfg),
        "accountant": cfg.privacy.accountant,
        "rounds": len(result.history),
        "secagg": cfg.privacy.secagg,
    }
    if rates and not local:
        block["sampling_rate_max"] = float(max(rates))
    return {"privacy": block}
