"""Homomorphic encryption: FedAvg over CKKS ciphertexts (TenSEAL), the server never decrypts.

Clients share a secret CKKS context (``fedloom he-keys`` writes it, or one trusted party makes
it); the server holds only the public context. :class:`HEClient` wraps a client to decrypt the
global model and encrypt its weighted update; :class:`HEFedAvg` sums ciphertexts. Needs the
optional dependency: ``pip install 'fedloom[he]'``. See ``docs/communication.md``.
"""

from fedloom.privacy.he.ciphertext import decrypt_vector, encrypt_vector, load_chunks, sum_encrypted
from fedloom.privacy.he.client import HE_EXTRA, HEClient
from fedloom.privacy.he.context import (
    POLY_DEGREES,
    key_id,
    load_context,
    make_context,
    public_bytes,
    read_keys,
    require_tenseal,
    secret_bytes,
    slot_count,
    write_keys,
)
from fedloom.privacy.he.strategy import HEFedAvg

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
    "require_tenseal",
    "secret_bytes",
    "slot_count",
    "sum_encrypted",
    "write_keys",
]
