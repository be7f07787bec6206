"""The encryption section of a run: CKKS homomorphic aggregation (TenSEAL)."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.privacy.he.context import POLY_DEGREES, scale_bits_range

__all__ = ["HEOptions"]


@dataclass
class HEOptions:
    """``[encryption]``: aggregate CKKS-encrypted models; the server never decrypts."""

    he: bool = option(False, "Aggregate CKKS-encrypted models (TenSEAL); the server never decrypts.")
    he_poly_degree: int = option(8192, "CKKS polynomial degree: 4096, 8192, 16384 or 32768 (slots = half).")
    he_scale: int = option(40, "CKKS scale as a power of two, in bits (40 means 2**40).")
    he_keys: str = option("", "Directory with secret.tenseal/public.tenseal from `fedloom he-keys` "
                          "(default: fresh keys for the run). A deployed server reads public.tenseal "
                          "only, a deployed client secret.tenseal only.")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value (checked only with ``he``)."""
        if not self.he:
            return
        from fedloom.privacy.he.context import require_tenseal

        require_tenseal()
        need(self.he_poly_degree in POLY_DEGREES,
             f"he_poly_degree must be one of {list(POLY_DEGREES)}, got {self.he_poly_degree}")
        low, high = scale_bits_range(self.he_poly_degree)
        need(low <= self.he_scale <= high,
             f"he_scale for degree {self.he_poly_degree} must be {low}..{high} bits, got {self.he_scale}")
