"""Wire homomorphic encryption into a configured simulation (``--he``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedloom.compression.setup import secure_aggregation_enabled
from fedloom.core.client import Client
from fedloom.core.types import ClientId
from fedloom.errors import ConfigError
from fedloom.privacy.he.client import HEClient
from fedloom.privacy.he.context import (
    POLY_DEGREES,
    key_id,
    load_context,
    make_context,
    public_bytes,
    read_keys,
    require_tenseal,
    scale_bits_range,
)
from fedloom.privacy.he.strategy import HEFedAvg

if TYPE_CHECKING:
    from fedloom.config import RunConfig
    from fedloom.simulation import Simulation

__all__ = ["apply_he", "check_he"]

# Aggregator names that are a plain (weighted) mean, the only combination possible on ciphertexts.
_MEAN_AGGREGATORS = ("", "mean", "weighted_mean", "fedavg")


def check_he(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` for invalid HE options or combinations (only with ``--he``)."""
    if not cfg.he:
        return
    require_tenseal()
    if cfg.he_poly_degree not in POLY_DEGREES:
        raise ConfigError(f"he_poly_degree must be one of {list(POLY_DEGREES)}, got {cfg.he_poly_degree}")
    low, high = scale_bits_range(cfg.he_poly_degree)
    if not low <= cfg.he_scale <= high:
        raise ConfigError(f"he_scale for degree {cfg.he_poly_degree} must be {low}..{high} bits, got {cfg.he_scale}")
    if cfg.strategy != "fedavg":
        raise ConfigError(
            f"--he works with --strategy fedavg only, got {cfg.strategy!r}: the server can only add "
            "ciphertexts, so server optimizers and control variates that need plaintext updates cannot run"
        )
    aggregator = str(getattr(cfg, "aggregator", "") or "")
    if aggregator not in _MEAN_AGGREGATORS:
        raise ConfigError(
            f"--he cannot use the robust aggregator {aggregator!r}: median, trimmed mean, Krum and the "
            "like compare plaintext updates, and the server only holds ciphertexts"
        )
    if cfg.compression != "none" or cfg.compress_broadcast:
        raise ConfigError("--he cannot be combined with --compression or --compress-broadcast: "
                          "ciphertexts are not compressible that way (use --compression none)")
    if secure_aggregation_enabled(cfg):
        raise ConfigError("--he and secure aggregation both hide updates from the server; choose one")
    if cfg.dp in ("central", "central-adaptive"):
        raise ConfigError(f"--he cannot be combined with --dp {cfg.dp}: central DP clips and noises plaintext "
                          "updates on the server, which only holds ciphertexts (use --dp local)")
    if cfg.resume and not cfg.he_keys:
        raise ConfigError("resuming an HE run needs the keys it was encrypted under: create them with "
                          "`fedloom he-keys --out DIR` and pass --he-keys DIR (fresh keys cannot decrypt it)")
    if cfg.fraction_evaluate <= 0:
        raise ConfigError("--he needs federated evaluation (--fraction-evaluate > 0): the server never "
                          "holds the plaintext model, so it cannot evaluate centrally")


def apply_he(sim: Simulation, common: dict[str, Any]) -> None:
    """Replace the strategy by :class:`HEFedAvg` (public context only) and wrap clients in
    :class:`HEClient` (secret context). The simulator plays the trusted party that makes the keys,
    unless ``--he-keys`` names a directory written by ``fedloom he-keys``."""
    cfg = sim.config
    if cfg.he_keys:
        secret, public = read_keys(cfg.he_keys)
    else:
        secret = make_context(poly_degree=cfg.he_poly_degree, scale_bits=cfg.he_scale)
        public = load_context(public_bytes(secret))  # the server's copy: serialized without the secret key
    kwargs = {k: v for k, v in common.items() if k not in ("evaluate_fn", "aggregator")}
    sim.strategy = HEFedAvg(context=public, **kwargs)
    inner_fn = sim.client_fn
    fingerprint = key_id(secret)

    def client_fn(cid: ClientId) -> Client:
        return HEClient(inner_fn(cid), context=secret, key_fingerprint=fingerprint)

    sim.client_fn = client_fn
