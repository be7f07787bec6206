"""Homomorphic encryption: FedAvg over CKKS ciphertexts (TenSEAL), the server never decrypts.

Clients share a secret CKKS context (``fedloom he-keys`` writes it, or one trusted party makes
it); the server holds only the public context. :class:`HEClient` wraps a client to decrypt the
global model and encrypt its weighted update; :class:`HEFedAvg` sums ciphertexts. Needs the
optional dependency: ``pip install 'fedloom[he]'``. See ``docs/communication.md``.

Names load on first use (the package itself imports nothing heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.privacy.he.ciphertext import decrypt_vector, encrypt_vector, load_chunks, sum_encrypted
    from fedloom.privacy.he.client import HE_EXTRA, HEClient
    from fedloom.privacy.he.context import (
        POLY_DEGREES,
        key_id,
        load_context,
        make_context,
        public_bytes,
        read_keys,
        read_public,
        read_secret,
        require_tenseal,
        secret_bytes,
        slot_count,
        write_keys,
    )
    from fedloom.privacy.he.strategy import HEFedAvg

_EXPORTS = {
    "decrypt_vector": "fedloom.privacy.he.ciphertext",
    "encrypt_vector": "fedloom.privacy.he.ciphertext",
    "load_chunks": "fedloom.privacy.he.ciphertext",
    "sum_encrypted": "fedloom.privacy.he.ciphertext",
    "HE_EXTRA": "fedloom.privacy.he.client",
    "HEClient": "fedloom.privacy.he.client",
    "POLY_DEGREES": "fedloom.privacy.he.context",
    "key_id": "fedloom.privacy.he.context",
    "load_context": "fedloom.privacy.he.context",
    "make_context": "fedloom.privacy.he.context",
    "public_bytes": "fedloom.privacy.he.context",
    "read_keys": "fedloom.privacy.he.context",
    "read_public": "fedloom.privacy.he.context",
    "read_secret": "fedloom.privacy.he.context",
    "require_tenseal": "fedloom.privacy.he.context",
    "secret_bytes": "fedloom.privacy.he.context",
    "slot_count": "fedloom.privacy.he.context",
    "write_keys": "fedloom.privacy.he.context",
    "HEFedAvg": "fedloom.privacy.he.strategy",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "HE_EXTRA",
    "POLY_DEGREES",
    "HEClient",
    "HEFedAvg",
    "decrypt_vector",
    "encrypt_vector",
    "key_id",
    "load_chunks",
    "load_context",
    "make_context",
    "public_bytes",
    "read_keys",
    "read_public",
    "read_secret",
    "require_tenseal",
    "secret_bytes",
    "slot_count",
    "sum_encrypted",
    "write_keys",
]
