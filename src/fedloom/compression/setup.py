"""Wire compression into a configured simulation (``--compression``, ``--compress-broadcast``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.compression import COMPRESSIONS, CompressedClient, UpdateCodec, make_codec
from fedloom.compression.base import Codec
from fedloom.compression.wire import Float32Codec
from fedloom.core.client import Client
from fedloom.core.types import ClientId
from fedloom.errors import ConfigError

if TYPE_CHECKING:
    from fedloom.config import RunConfig
    from fedloom.simulation import Simulation

__all__ = ["apply_compression", "check_compression", "secure_aggregation_enabled"]

# Config fields that may switch on secure aggregation (added by the SecAgg+ work), and their "off" values.
_SECAGG_FIELDS = ("secagg", "secure_aggregation")
_OFF = (None, False, 0, "", "none", "off")


def secure_aggregation_enabled(cfg: RunConfig) -> bool:
    """Whether the configuration asks for secure aggregation (whatever its field is called)."""
    return any(getattr(cfg, name, None) not in _OFF for name in _SECAGG_FIELDS)


def check_compression(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` for invalid compression options or combinations.

    SecAgg+ quantizes every update into its own finite ring before masking: that quantizer *is*
    the compression of a secure-aggregation run (its ring width sets the bytes), and per-client
    scales or top-k indices cannot be summed under masks. So ``--compression`` other than ``none``
    with secure aggregation is refused; ``--compress-broadcast`` (server to client) still works.
    """
    if cfg.compression not in COMPRESSIONS:
        raise ConfigError(f"unknown compression {cfg.compression!r}; choose one of {list(COMPRESSIONS)}")
    if not 0.0 < cfg.topk_fraction <= 1.0:
        raise ConfigError(f"topk_fraction must be in (0, 1], got {cfg.topk_fraction}")
    if cfg.quant_block < 0:
        raise ConfigError(f"quant_block must be >= 0 (0 = one scale per tensor), got {cfg.quant_block}")
    if cfg.compression != "none" and secure_aggregation_enabled(cfg):
        raise ConfigError(
            f"--compression {cfg.compression} cannot be combined with secure aggregation: SecAgg+ "
            "already quantizes updates into its ring (that is its compression); use --compression none"
        )


def apply_compression(sim: Simulation) -> None:
    """Wrap the simulation's clients in :class:`CompressedClient` and set the loop's decoder."""
    cfg = sim.config
    codec: Codec | None = make_codec(cfg.compression, topk_fraction=cfg.topk_fraction, quant_block=cfg.quant_block)
    if codec is None and not cfg.compress_broadcast:
        return
    if codec is None:  # float16 broadcast only: updates go back in float32, taken against what was received
        codec = Float32Codec()
    sim.codec = UpdateCodec(codec, compress_broadcast=cfg.compress_broadcast)
    inner_fn = sim.client_fn

    def client_fn(cid: ClientId) -> Client:
        return CompressedClient(inner_fn(cid), codec=codec, error_feedback=cfg.error_feedback,
                                state=sim.client_states.get(cid))

    sim.client_fn = client_fn
