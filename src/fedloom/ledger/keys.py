"""The ledger's Ed25519 signing key: made by ``fedloom certs`` (deployment) or per run (simulation).

Files: ``ledger.key`` (PKCS#8 PEM, owner-only) and ``ledger.pub`` (SubjectPublicKeyInfo PEM), the
public half distributed with the CA certificate so that clients and auditors can check signatures.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedloom.errors import ConfigError

__all__ = ["KEY_FILE", "PUB_FILE", "generate_key", "write_key_pair", "load_private_key", "load_public_key",
           "key_id", "public_pem"]

KEY_FILE = "ledger.key"
PUB_FILE = "ledger.pub"


def generate_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key from the OS CSPRNG."""
    return Ed25519PrivateKey.generate()


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw public key: names the key in every entry."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def write_key_pair(folder: str | Path, key: Ed25519PrivateKey | None = None) -> Ed25519PrivateKey:
    """Write ``ledger.key`` (mode 0600) and ``ledger.pub`` into ``folder``; returns the key."""
    key = key or generate_key()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(folder / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    (folder / PUB_FILE).write_bytes(public_pem(key))
    return key


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file ``path``; a clear :class:`ConfigError` otherwise."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise ConfigError(f"ledger signing key {path} does not exist: create it with `fedloom certs` "
                          "(it writes ledger.key and ledger.pub) or leave ledger_key empty") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, the ledger signs with Ed25519 (`fedloom certs`)")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in PEM file ``path``; a clear :class:`ConfigError` otherwise."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"ledger public key {path} does not exist: pass --public-key (the ledger.pub "
                          "distributed with the CA certificate)") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not the ledger's Ed25519 public key")
    return key
