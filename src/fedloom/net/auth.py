"""Who is calling: per-client tokens and/or mutual-TLS identities, checked against an allow list.

A client proves its identity with a bearer token (``authorization: Bearer <token>`` metadata,
sent only over TLS) and/or a client certificate signed by the deployment CA (mTLS: the TLS
handshake itself refuses other certificates; the certificate's common name is the identity). The
server stores only token hashes. A caller is then admitted only if its identity is in the allow list.

Identity is never a claim when credentials are checked: an allow list needs an authenticator
(tokens or client certificates), and a caller whose claimed name (``x-fedloom-client``) differs
from the identity its credentials prove is refused. Without any authenticator (local experiments)
clients name themselves, and no allow list is accepted.

Failures map to gRPC status codes a client can act on: ``UNAUTHENTICATED`` (no or bad credentials:
retrying will not help) and ``PERMISSION_DENIED`` (a valid identity that is not, or no longer,
allowed: revoked).

Revocation (``fedloom certs revoke NAME``) needs no restart: :class:`Revocations` re-reads the
deployment's ``crl.pem`` (a CRL signed by the deployment CA) when the file changes, and an
authenticator built with ``tokens_file`` re-reads ``tokens.json`` the same way.

Example:
    >>> auth = Authenticator(token_hashes={"a": hash_token("s3cret")}, allowed=["a"])
    >>> auth.identify({"authorization": "Bearer s3cret"}, cert_name=None)
    'a'
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import grpc

from fedloom.errors import ConfigError, FedloomError
from fedloom.net.certs import hash_token

__all__ = ["AuthError", "Authenticator", "Revocations", "load_token_hashes", "CLAIMED_NAME_KEY"]

log = logging.getLogger(__name__)

CLAIMED_NAME_KEY = "x-fedloom-client"
"""Metadata key with a client's self-declared name: the identity only when no credential is checked
(local experiments); otherwise it must match the identity the credentials prove."""


class AuthError(FedloomError):
    """A caller was refused; ``code`` is the gRPC status the server answers with."""

    exit_code = 3
    """Exit status of ``fedloom client`` when the server refuses it (retrying cannot help)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


class _Watched:
    """A file re-read when its modification time or size changes (checked at most once per ``interval_s``)."""

    def __init__(self, path: str | Path, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def changed(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._checked < self.interval_s:
                return False
            self._checked = now
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            return True


class Revocations:
    """Serial numbers of revoked client certificates, from a CRL the deployment CA signed.

    The CRL is re-read when it changes (see :meth:`refresh`); a CRL that is not signed by the CA,
    or does not parse, is ignored with an error in the log (the previous list stays in force).

    Args:
        crl_path: ``crl.pem`` as written by ``fedloom certs revoke``; a missing file revokes nothing.
        ca_cert: The deployment CA certificate (PEM bytes) that must have signed the CRL.
    """

    def __init__(self, crl_path: str | Path, ca_cert: bytes, *, interval_s: float = 1.0) -> None:
        from cryptography import x509

        self._file = _Watched(crl_path, interval_s)
        self._ca = x509.load_pem_x509_certificate(ca_cert)
        self._serials: frozenset[int] = frozenset()
        self.refresh()

    @property
    def path(self) -> Path:
        return self._file.path

    def refresh(self) -> None:
        """Re-read the CRL if the file changed since the last look."""
        if not self._file.changed():
            return
        from cryptography import x509

        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._serials = frozenset()
            return
        try:
            crl = x509.load_pem_x509_crl(raw)
            if not crl.is_signature_valid(self._ca.public_key()):  # type: ignore[arg-type]
                raise ValueError("its signature is not the deployment CA's")
        except ValueError as exc:
            log.error("ignoring %s: %s (the previous revocations stay in force)", self.path, exc)
            return
        self._serials = frozenset(r.serial_number for r in crl)
        log.info("revocation list %s loaded: %d revoked certificate(s)", self.path, len(self._serials))

    def is_revoked(self, serial: int | None) -> bool:
        """True when ``serial`` is on the list (re-read first if the file changed)."""
        self.refresh()
        return serial is not None and serial in self._serials


def load_token_hashes(path: str | Path) -> dict[str, str]:
    """Read ``tokens.json`` (``{name: sha256 hex}``) as written by ``fedloom certs``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"tokens file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"tokens file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError(f"tokens file {path} must map client names to token hashes")
    return dict(data)


class Authenticator:
    """Decide the identity of a caller, or refuse it.

    Args:
        token_hashes: ``{name: sha256(token)}``; when given, every caller must present a valid token.
        require_cert: Every caller must present a client certificate (mTLS); its common name is
            the identity. With tokens as well, both must name the same client.
        allowed: Identities admitted; ``None`` admits every authenticated identity. Removing a name
            revokes that client. Needs ``token_hashes`` or ``require_cert``: a list of names that
            clients merely claim would be no access control (refused with a :class:`ConfigError`).
        tokens_file: ``tokens.json`` to read the token hashes from, re-read when it changes (``fedloom
            certs revoke`` removes the revoked client's entry); instead of ``token_hashes``.
        revocations: Revoked client certificates (checked when the caller presents one).
    """

    def __init__(
        self,
        *,
        token_hashes: Mapping[str, str] | None = None,
        require_cert: bool = False,
        allowed: Iterable[str] | None = None,
        tokens_file: str | Path | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self._tokens = _Watched(tokens_file) if tokens_file else None
        if self._tokens is not None:
            self._tokens.changed()
            token_hashes = load_token_hashes(self._tokens.path)
        self._by_hash = {h: name for name, h in (token_hashes or {}).items()}
        self._revoked_hashes: dict[str, str] = {}  # tokens removed from tokens_file while serving
        self.use_tokens = token_hashes is not None
        self.revocations = revocations
        self.require_cert = require_cert
        self.allowed = set(allowed) if allowed is not None else None
        if self.allowed is not None and self.open:
            raise ConfigError("an allow list needs an authenticator (token_hashes or require_cert): without one, "
                              "its names are claims any client can make")

    @property
    def open(self) -> bool:
        """True when no credential is checked (clients name themselves: local experiments only)."""
        return not self.use_tokens and not self.require_cert

    def _reload_tokens(self) -> None:
        if self._tokens is not None and self._tokens.changed():
            try:
                hashes = load_token_hashes(self._tokens.path)
            except ConfigError as exc:
                log.error("keeping the previous tokens: %s", exc)
                return
            by_hash = {h: name for name, h in hashes.items()}
            self._revoked_hashes.update({h: n for h, n in self._by_hash.items() if h not in by_hash})
            self._by_hash = by_hash
            log.info("tokens file %s reloaded: %d client(s)", self._tokens.path, len(hashes))

    def identify(self, metadata: Mapping[str, str], cert_name: str | None) -> str:
        """The caller's identity from its metadata and certificate name; raises :class:`AuthError`."""
        self._reload_tokens()
        identity: str | None = None
        if self.require_cert:
            if not cert_name:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
            identity = cert_name
        if self.use_tokens:
            auth = metadata.get("authorization", "")
            if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "missing token (authorization: Bearer <token>)")
            digest = hash_token(auth[len("Bearer "):])
            name = next((n for h, n in self._by_hash.items() if hmac.compare_digest(h, digest)), None)
            revoked = next((n for h, n in self._revoked_hashes.items() if hmac.compare_digest(h, digest)), None)
            if name is None and revoked is not None:
                raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                                f"the token of client {revoked!r} was revoked (fedloom certs revoke); ask the "
                                "server's operator for new credentials")
            if name is None:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "invalid token")
            if identity is not None and identity != name:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                                f"token belongs to {name!r} but the certificate to {identity!r}")
            identity = name
        claimed = metadata.get(CLAIMED_NAME_KEY, "")
        if identity is None:
            identity = claimed
            if not identity:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, f"no identity: send {CLAIMED_NAME_KEY} metadata")
        elif claimed and claimed != identity:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            f"client claims to be {claimed!r} but its credentials are {identity!r}'s")
        if self.allowed is not None and identity not in self.allowed:
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                            f"client {identity!r} is not allowed to join (unknown or revoked)")
        return identity

    def identify_context(self, context: grpc.ServicerContext) -> str:
        """:meth:`identify` for a live gRPC call."""
        return self.identify_call(context)[0]

    def identify_call(self, context: grpc.ServicerContext) -> tuple[str, int | None]:
        """``(identity, certificate serial or None)`` of a live gRPC call; raises :class:`AuthError`."""
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        auth = context.auth_context() or {}
        names = auth.get("x509_common_name") or []
        cert_name = names[0].decode() if names else None
        serial = None
        pems = auth.get("x509_pem_cert") or []
        if pems and self.revocations is not None:  # before the token: a revoked client hears why
            from cryptography import x509

            serial = x509.load_pem_x509_certificate(pems[0]).serial_number
            if self.revocations.is_revoked(serial):
                raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                                f"the certificate of client {cert_name!r} was revoked (fedloom certs revoke); ask "
                                "the server's operator for new credentials")
        return self.identify(metadata, cert_name), serial

    def still_valid(self, identity: str, serial: int | None) -> bool:
        """Whether a connected client's credentials still hold (its certificate or token not revoked since)."""
        if self.revocations is not None and self.revocations.is_revoked(serial):
            return False
        if self._tokens is not None:
            self._reload_tokens()
            return identity in self._by_hash.values()
        return True
