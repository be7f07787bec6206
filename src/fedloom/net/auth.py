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

Example:
    >>> auth = Authenticator(token_hashes={"a": hash_token("s3cret")}, allowed=["a"])
    >>> auth.identify({"authorization": "Bearer s3cret"}, cert_name=None)
    'a'
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import grpc

from fedloom.errors import ConfigError, FedloomError
from fedloom.net.certs import hash_token

__all__ = ["AuthError", "Authenticator", "load_token_hashes", "CLAIMED_NAME_KEY"]

CLAIMED_NAME_KEY = "x-fedloom-client"
"""Metadata key with a client's self-declared name: the identity only when no credential is checked
(local experiments); otherwise it must match the identity the credentials prove."""


class AuthError(FedloomError):
    """A caller was refused; ``code`` is the gRPC status the server answers with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


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
    """

    def __init__(
        self,
        *,
        token_hashes: Mapping[str, str] | None = None,
        require_cert: bool = False,
        allowed: Iterable[str] | None = None,
    ) -> None:
        self._by_hash = {h: name for name, h in (token_hashes or {}).items()}
        self.use_tokens = token_hashes is not None
        self.require_cert = require_cert
        self.allowed = set(allowed) if allowed is not None else None
        if self.allowed is not None and self.open:
            raise ConfigError("an allow list needs an authenticator (token_hashes or require_cert): without one, "
                              "its names are claims any client can make")

    @property
    def open(self) -> bool:
        """True when no credential is checked (clients name themselves: local experiments only)."""
        return not self.use_tokens and not self.require_cert

    def identify(self, metadata: Mapping[str, str], cert_name: str | None) -> str:
        """The caller's identity from its metadata and certificate name; raises :class:`AuthError`."""
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
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        names = (context.auth_context() or {}).get("x509_common_name") or []
        cert_name = names[0].decode() if names else None
        return self.identify(metadata, cert_name)
