"""CKKS contexts for encrypted aggregation: generate, split into secret and public, (de)serialize.

Paper: Jung Hee Cheon, Andrey Kim, Miran Kim, Yongsoo Song, "Homomorphic Encryption for
Arithmetic of Approximate Numbers", ASIACRYPT 2017 (IACR ePrint 2016/421). Library: TenSEAL
(Ayoub Benaissa et al., "TenSEAL: A Library for Encrypted Tensor Operations Using Homomorphic
Encryption", arXiv:2104.03152) over Microsoft SEAL.

Aggregation only *adds* ciphertexts, so the contexts carry no Galois keys (rotations; they make a
context ~35 MB and copies ~6x slower) and no relinearization keys (multiplications), and the
coefficient modulus is the smallest that works: one 60-bit data prime plus the special prime.
A ciphertext then holds ``poly_degree / 2`` values in ``2 * poly_degree * 8`` bytes. Values are
encoded times ``2**scale_bits``; a sum must stay below ``2**(data_bits - scale_bits - 1)`` in
magnitude (``2**19`` with the defaults) and carries an absolute error around ``2**-(scale_bits-14)``
(see ``benchmarks/communication/RESULTS.md`` for measured numbers).

Serialized contexts and ciphertexts are SEAL/TenSEAL protobuf streams, parsed by TenSEAL's own
deserializers (never pickle).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from fedloom.errors import ConfigError, ValidationError

__all__ = [
    "POLY_DEGREES",
    "require_tenseal",
    "make_context",
    "public_bytes",
    "secret_bytes",
    "load_context",
    "write_keys",
    "read_keys",
    "read_public",
    "read_secret",
    "slot_count",
    "key_id",
    "scale_bits_range",
]

# Coefficient modulus per polynomial degree: [data prime, special prime]; within SEAL's 128-bit
# security bounds (109 bits for 4096; 218, 438, 881 for the larger degrees).
_COEFF_MOD_BITS: dict[int, list[int]] = {4096: [50, 59], 8192: [60, 60], 16384: [60, 60], 32768: [60, 60]}
POLY_DEGREES: tuple[int, ...] = tuple(_COEFF_MOD_BITS)
"""Polynomial modulus degrees accepted by ``--he-poly-degree``."""

SECRET_FILE = "secret.tenseal"
PUBLIC_FILE = "public.tenseal"


def require_tenseal() -> ModuleType:
    """Import TenSEAL, or raise a :class:`ConfigError` that says how to install it."""
    try:
        import tenseal
    except ImportError as exc:
        raise ConfigError(
            "homomorphic encryption needs TenSEAL, which is not installed: pip install 'fedloom[he]'"
        ) from exc
    return tenseal


def scale_bits_range(poly_degree: int) -> tuple[int, int]:
    """Scales (in bits) that leave at least 10 bits of headroom for sums: ``(low, high)``."""
    return 20, _COEFF_MOD_BITS[poly_degree][0] - 10


def make_context(*, poly_degree: int = 8192, scale_bits: int = 40) -> Any:
    """A fresh CKKS context holding the secret key (give it to clients only)."""
    ts = require_tenseal()
    if poly_degree not in _COEFF_MOD_BITS:
        raise ConfigError(f"he poly degree must be one of {list(POLY_DEGREES)}, got {poly_degree}")
    low, high = scale_bits_range(poly_degree)
    if not low <= scale_bits <= high:
        raise ConfigError(f"he scale for degree {poly_degree} must be {low}..{high} bits, got {scale_bits}")
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=poly_degree,
                     coeff_mod_bit_sizes=_COEFF_MOD_BITS[poly_degree])
    ctx.global_scale = float(2**scale_bits)
    return ctx


def public_bytes(context: Any) -> bytes:
    """Serialize without the secret key, Galois or relinearization keys: the server's copy."""
    return bytes(context.serialize(save_public_key=True, save_secret_key=False,
                                   save_galois_keys=False, save_relin_keys=False))


def secret_bytes(context: Any) -> bytes:
    """Serialize with the secret key (no Galois or relinearization keys): the clients' copy."""
    if not context.is_private():
        raise ConfigError("this context holds no secret key")
    return bytes(context.serialize(save_public_key=True, save_secret_key=True,
                                   save_galois_keys=False, save_relin_keys=False))


def load_context(data: bytes) -> Any:
    """Parse a serialized context with TenSEAL's deserializer; malformed bytes raise ``ValidationError``."""
    ts = require_tenseal()
    try:
        return ts.context_from(bytes(data))
    except Exception as exc:
        raise ValidationError(f"not a TenSEAL context: {exc}") from exc


def key_id(context: Any) -> str:
    """A short fingerprint of the context's public part: equal for a secret context and its public copy."""
    return hashlib.sha256(public_bytes(context)).hexdigest()[:16]


def slot_count(context: Any) -> int:
    """Values one CKKS ciphertext holds: half the polynomial degree."""
    return int(context.seal_context().data.key_context_data().parms().poly_modulus_degree()) // 2


def write_keys(out_dir: str | Path, *, poly_degree: int = 8192, scale_bits: int = 40) -> tuple[Path, Path]:
    """Write ``secret.tenseal`` (clients; mode 0600) and ``public.tenseal`` (server) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = make_context(poly_degree=poly_degree, scale_bits=scale_bits)
    secret, public = out / SECRET_FILE, out / PUBLIC_FILE
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret_bytes(ctx))
    public.write_bytes(public_bytes(ctx))
    return secret, public


def _read_context(path: Path, *, private: bool) -> Any:
    if not path.exists():
        raise ConfigError(f"{path} does not exist: create keys with `fedloom he-keys --out {path.parent}`")
    ctx = load_context(path.read_bytes())
    if private and not ctx.is_private():
        raise ConfigError(f"{path} holds no secret key")
    if not private and ctx.is_private():
        raise ConfigError(f"{path} holds a secret key: the server's copy must be public only")
    return ctx


def read_public(key_dir: str | Path) -> Any:
    """The server's context: ``public.tenseal`` of ``key_dir`` (``secret.tenseal`` is never opened)."""
    return _read_context(Path(key_dir) / PUBLIC_FILE, private=False)


def read_secret(key_dir: str | Path) -> Any:
    """A client's context: ``secret.tenseal`` of ``key_dir`` (it holds the public key as well)."""
    return _read_context(Path(key_dir) / SECRET_FILE, private=True)


def read_keys(key_dir: str | Path) -> tuple[Any, Any]:
    """Load ``(secret context, public context)`` written by :func:`write_keys` (both roles: simulation)."""
    return read_secret(key_dir), read_public(key_dir)
