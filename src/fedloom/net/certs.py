"""Create the credentials of a deployment: a CA, a server certificate, per-client certificates and tokens.

Built on the `cryptography <https://cryptography.io>`_ package (ECDSA P-256 keys, X.509 v3
certificates). ``fedloom certs --out DIR --clients a,b --hosts localhost,127.0.0.1`` writes::

    DIR/ca.pem  DIR/ca.key                 the certificate authority (keep ca.key offline)
    DIR/server.pem  DIR/server.key         server certificate with SANs for every --hosts entry
    DIR/tokens.json                        SHA-256 of each client's token (the server's allow file)
    DIR/clients/<name>/client.pem  client.key  token  ca.pem    what you hand to client <name>
    DIR/admin.sha256                       SHA-256 of the admin token (the server's, for `fedloom status`)
    DIR/admin/token  ca.pem  client.pem  client.key   the operator's: `fedloom status --credentials DIR/admin`
    DIR/ledger.key  DIR/ledger.pub         the server's Ed25519 key that signs the round ledger; ledger.pub
                                           is also in every clients/<name>/ (they check their receipts)

A client certificate's common name is the client's identity; so is the name its token maps to.
The admin token is not a client token (it is in no ``tokens.json``): it opens the read-only status
service and page (:mod:`fedloom.net.status`), never a training session. The admin certificate
(common name :data:`ADMIN_NAME`, a name no client may take) only gets ``fedloom status`` through a
server that requires client certificates.

``fedloom certs revoke NAME --out DIR`` (:func:`revoke_client`) adds the client's certificate to
``DIR/crl.pem`` (a certificate revocation list signed by the CA) and removes its token from
``DIR/tokens.json``; a running server re-reads both when they change, so no restart is needed.

Example:
    >>> import tempfile
    >>> out = create_credentials(tempfile.mkdtemp(), clients=["a"], hosts=["localhost"])
    >>> sorted(p.name for p in out.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['admin', 'admin.sha256', 'ca.key', 'ca.pem', 'clients', 'ledger.key', 'ledger.pub', 'server.key',
     'server.pem', 'tokens.json']
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedloom.errors import ConfigError

__all__ = ["create_credentials", "revoke_client", "issued_client_certificates", "hash_token", "DEFAULT_HOSTS",
           "NAME_PATTERN", "CRL_NAME", "ADMIN_NAME", "ADMIN_HASH_FILE"]

CRL_NAME = "crl.pem"
"""The revocation list beside ``ca.pem`` in a credentials directory."""

DEFAULT_HOSTS = ("localhost", "127.0.0.1")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Allowed client names: they become file names and certificate common names."""
ADMIN_NAME = "fedloom-admin"
"""Common name of the operator's certificate (``DIR/admin``); reserved: no client may be called so."""
ADMIN_HASH_FILE = "admin.sha256"
"""The server's copy of the admin token, hashed (in the credentials directory)."""


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token: what the server stores (it never needs the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if secret:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key, issuer: x509.Name, issuer_key, *, days: int, ca: bool = False,  # noqa: ANN001
          sans: Sequence[x509.GeneralName] = (), usage=None) -> x509.Certificate:  # noqa: ANN001
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def create_credentials(
    out: str | Path, *, clients: Sequence[str], hosts: Sequence[str] = DEFAULT_HOSTS, days: int = 365
) -> Path:
    """Write a CA, a server certificate for ``hosts`` and a certificate + token per client to ``out``.

    Args:
        out: Directory to create (files in it are overwritten).
        clients: Client names (their identities); letters, digits, ``_.-``.
        hosts: Names and IP addresses the server is reached at (``localhost`` and ``127.0.0.1`` are
            always added).
        days: Validity of every certificate.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.
    """
    out = Path(out)
    for name in clients:
        if not NAME_PATTERN.match(name):
            raise ConfigError(f"invalid client name {name!r}: use letters, digits, '_', '.', '-' (max 64)")
    if len(set(clients)) != len(clients):
        raise ConfigError("client names must be unique")
    if ADMIN_NAME in clients:
        raise ConfigError(f"{ADMIN_NAME!r} is reserved for the operator's status credentials: "
                          "name the client otherwise")
    all_hosts = list(dict.fromkeys([*DEFAULT_HOSTS, *(h.strip() for h in hosts if h.strip())]))
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedloom CA")])
    ca_cert = _cert("fedloom CA", ca_key, ca_name, ca_key, days=days, ca=True)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    _write(out / "ca.pem", ca_pem)
    _write(out / "ca.key", _pem_key(ca_key), secret=True)

    server_key = _key()
    server_cert = _cert(all_hosts[0], server_key, ca_name, ca_key, days=days,
                        sans=[_san(h) for h in all_hosts], usage=ExtendedKeyUsageOID.SERVER_AUTH)
    _write(out / "server.pem", server_cert.public_bytes(serialization.Encoding.PEM))
    _write(out / "server.key", _pem_key(server_key), secret=True)

    from fedloom.ledger.keys import PUB_FILE, public_pem, write_key_pair

    ledger_pub = public_pem(write_key_pair(out))  # signs the round ledger and the clients' receipts
    hashes_by_name: dict[str, str] = {}
    for name in clients:
        key = _key()
        cert = _cert(name, key, ca_name, ca_key, days=days, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        token = secrets.token_urlsafe(32)
        hashes_by_name[name] = hash_token(token)
        cdir = out / "clients" / name
        _write(cdir / "client.pem", cert.public_bytes(serialization.Encoding.PEM))
        _write(cdir / "client.key", _pem_key(key), secret=True)
        _write(cdir / "token", token.encode(), secret=True)
        _write(cdir / "ca.pem", ca_pem)
        _write(cdir / PUB_FILE, ledger_pub)
    _write(out / "tokens.json", json.dumps(hashes_by_name, indent=2).encode())
    _write_admin(out, ca_name, ca_key, ca_pem, days=days)
    return out


def issued_client_certificates(out: str | Path) -> bool:
    """True when ``out`` (a ``fedloom certs`` directory) holds client certificates (then mTLS is the default)."""
    return any(Path(out).glob("clients/*/client.pem"))


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename: a server re-reading ``path`` never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def revoke_client(out: str | Path, name: str, *, days: int = 365) -> int:
    """Revoke client ``name`` of the credentials directory ``out``; returns its certificate's serial number.

    Adds the certificate to ``out/crl.pem`` (a CRL signed by the CA in ``out/ca.key``; earlier revocations
    are kept) and removes the client's token from ``out/tokens.json``. A running server re-reads both.

    Raises:
        ConfigError: ``out`` has no CA key or no certificate for ``name``.
    """
    out = Path(out)
    cert_file = out / "clients" / name / "client.pem"
    if not (out / "ca.key").exists():
        raise ConfigError(f"{out} has no ca.key: revoke in the directory `fedloom certs --out` wrote")
    if not cert_file.exists():
        known = sorted(p.parent.name for p in out.glob("clients/*/client.pem"))
        raise ConfigError(f"no client {name!r} in {out} (no {cert_file}); its clients: {', '.join(known) or 'none'}")
    ca_key = serialization.load_pem_private_key((out / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    serial = x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject).last_update(now)
               .next_update(now + dt.timedelta(days=days)))
    crl_file = out / CRL_NAME
    seen = set()
    if crl_file.exists():
        for entry in x509.load_pem_x509_crl(crl_file.read_bytes()):
            seen.add(entry.serial_number)
            builder = builder.add_revoked_certificate(entry)
    if serial not in seen:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    crl = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    _write_atomic(crl_file, crl.public_bytes(serialization.Encoding.PEM))
    tokens_file = out / "tokens.json"
    if tokens_file.exists():
        tokens = json.loads(tokens_file.read_text())
        if tokens.pop(name, None) is not None:
            _write_atomic(tokens_file, json.dumps(tokens, indent=2).encode())
    return serial


def _write_admin(out: Path, ca_name: x509.Name, ca_key: ec.EllipticCurvePrivateKey, ca_pem: bytes, *,
                 days: int) -> None:
    """The operator's status credentials: an admin token (hashed for the server) and a certificate."""
    key = _key()
    cert = _cert(ADMIN_NAME, key, ca_name, ca_key, days=days, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    token = secrets.token_urlsafe(32)
    adir = out / "admin"
    _write(adir / "token", token.encode(), secret=True)
    _write(adir / "ca.pem", ca_pem)
    _write(adir / "client.pem", cert.public_bytes(serialization.Encoding.PEM))
    _write(adir / "client.key", _pem_key(key), secret=True)
    _write(out / ADMIN_HASH_FILE, (hash_token(token) + "\n").encode())
