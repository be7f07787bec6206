"""The communication section of a run: update compression and broadcast precision."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.compression.registry import CODECS
from fedloom.core.options import need, option

__all__ = ["CompressionOptions"]


@dataclass
class CompressionOptions:
    """``[communication]``: how client updates (and the broadcast) are coded on the wire."""

    compression: str = option("none", "Client update coding.", choices=lambda: CODECS)
    topk_fraction: float = option(0.01, "Share of update entries that --compression topk sends, in (0, 1].")
    error_feedback: bool = option(True, "Keep each client's coding error and add it to its next update.")
    quant_block: int = option(0, "Entries sharing one scale in q8/q4 (0 = one scale per tensor).")
    compress_broadcast: bool = option(False, "Send the global model to clients in float16.")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        need(self.compression in CODECS,
             f"unknown compression {self.compression!r}; choose one of: {CODECS.choices()}")
        need(0.0 < self.topk_fraction <= 1.0, f"topk_fraction must be in (0, 1], got {self.topk_fraction}")
        need(self.quant_block >= 0, f"quant_block must be >= 0 (0 = one scale per tensor), got {self.quant_block}")
