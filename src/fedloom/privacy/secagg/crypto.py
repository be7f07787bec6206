"""Cryptographic building blocks of SecAgg+, all from the ``cryptography`` package.

* X25519 key agreement (RFC 7748) for the pairwise secrets of two clients.
* HKDF-SHA256 (RFC 5869) to turn a shared secret (or a client's round secret) into keys.
* ChaCha20-Poly1305 (RFC 8439) AEAD to protect Shamir shares relayed through the server.
* A PRG that expands a 256-bit seed into a mask vector: the AES-256-CTR keystream. Masks never
  come from numpy's generators, whose state is recoverable from their output.

Nothing here is home-made cryptography; the module only fixes encodings and domain labels.

Example:
    >>> a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    >>> agree(a, public_bytes(b)) == agree(b, public_bytes(a))
    True
    >>> prg_mask(bytes(32), 4, 16).dtype
    dtype('uint16')
"""

from __future__ import annotations

import functools
import os

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedloom.errors import ValidationError

__all__ = [
    "KEY_BYTES",
    "X25519PrivateKey",
    "agree",
    "decrypt",
    "encrypt",
    "hkdf",
    "private_bytes",
    "private_from_bytes",
    "prg_mask",
    "public_bytes",
    "ring_dtype",
]

KEY_BYTES = 32
_NONCE_BYTES = 12


def hkdf(secret: bytes, info: bytes, length: int = KEY_BYTES) -> bytes:
    """HKDF-SHA256 of ``secret`` for the purpose named by ``info`` (domain separation)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=b"fedloom/secagg/" + info).derive(secret)


def private_from_bytes(raw: bytes) -> X25519PrivateKey:
    """An X25519 private key from its 32 raw bytes (e.g. derived with :func:`hkdf` or reconstructed)."""
    return X25519PrivateKey.from_private_bytes(bytes(raw))


def private_bytes(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of a private key."""
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of the public key of ``key``."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def agree(private: X25519PrivateKey, peer_public: bytes, info: bytes = b"agree") -> bytes:
    """A 32-byte key both ends derive: HKDF-SHA256 of the X25519 shared secret."""
    try:
        peer = X25519PublicKey.from_public_bytes(bytes(peer_public))
        shared = private.exchange(peer)
    except ValueError as exc:  # wrong length or a low-order point
        raise ValidationError(f"invalid X25519 public key: {exc}") from exc
    return hkdf(shared, info)


def encrypt(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """ChaCha20-Poly1305 with a fresh random nonce; output is ``nonce || ciphertext || tag``."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated)


def decrypt(key: bytes, blob: bytes, associated: bytes) -> bytes:
    """Inverse of :func:`encrypt`; a forged or misrouted message raises ``ValidationError``."""
    try:
        return ChaCha20Poly1305(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated)
    except InvalidTag as exc:
        raise ValidationError("secagg share failed authentication (forged or misrouted)") from exc


@functools.lru_cache(maxsize=64)
def ring_dtype(bits: int) -> np.dtype:
    """The narrowest unsigned integer dtype that holds elements of ``Z_{2^bits}``."""
    for width in (8, 16, 32, 64):
        if bits <= width:
            return np.dtype(f"uint{width}")
    raise ValidationError(f"ring of 2^{bits} does not fit in 64-bit integers")


def prg_mask(seed: bytes, length: int, bits: int) -> np.ndarray:
    """Expand a 256-bit ``seed`` into ``length`` uniform elements of ``Z_{2^bits}``.

    AES-256-CTR keystream (zero IV: each seed is used for exactly one mask). Because the modulus is
    a power of two, masking the keystream words to ``bits`` bits is exactly uniform.
    """
    if len(seed) != KEY_BYTES:
        raise ValidationError(f"mask seed must be {KEY_BYTES} bytes, got {len(seed)}")
    dtype = ring_dtype(bits)
    encryptor = Cipher(algorithms.AES(bytes(seed)), modes.CTR(bytes(16))).encryptor()
    stream = encryptor.update(bytes(length * dtype.itemsize)) + encryptor.finalize()
    words = np.frombuffer(stream, dtype=dtype.newbyteorder("<")).astype(dtype)
    if bits < dtype.itemsize * 8:
        words &= dtype.type((1 << bits) - 1)
    return words
