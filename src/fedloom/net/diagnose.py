"""Why a client could not connect: probe the server's address with plain sockets and :mod:`ssl`.

gRPC reports most connection failures as ``UNAVAILABLE`` (often just ``Socket closed``), whether no
server listens, the server speaks plaintext to a TLS client (or TLS to a plaintext one), or the
server refused the client's certificate in the TLS handshake. :func:`diagnose` tells these apart
with one short probe, speaking HTTP/2 (what gRPC runs on) in plaintext or over TLS with the
client's own CA, certificate and key, so the client can say what to do and stop retrying what
cannot succeed.

Example:
    >>> diagnose("127.0.0.1:1", tls=False).kind
    'no_server'
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Diagnosis", "TlsFiles", "diagnose", "split_address"]

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
_CERT_ALERTS = {
    "CERTIFICATE_REQUIRED": "it requires a client certificate (mutual TLS) and this client presented none: use "
                            "the client folder `fedloom certs` wrote for it (client.pem and client.key)",
    "UNKNOWN_CA": "the certificate was not issued by the server's CA: use the credentials from the same "
                  "`fedloom certs` run as the server's",
    "BAD_CERTIFICATE": "the certificate was not accepted (not issued by the server's CA, or not a client "
                       "certificate): use the credentials from the same `fedloom certs` run as the server's",
    "CERTIFICATE_EXPIRED": "the certificate has expired: ask the server's operator for new credentials "
                           "(`fedloom certs --clients NAME --days N`)",
    "CERTIFICATE_REVOKED": "the certificate was revoked: ask the server's operator for new credentials",
    "UNSUPPORTED_CERTIFICATE": "the certificate is not a client certificate: use client.pem from `fedloom certs`",
    "HANDSHAKE_FAILURE": "the TLS handshake failed on the server's side (a certificate it does not accept)",
}


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files a TLS client connects with (for the probe; gRPC's credentials are opaque)."""

    ca_cert: str | Path
    client_cert: str | Path | None = None
    client_key: str | Path | None = None


@dataclass(frozen=True)
class Diagnosis:
    """What the probe found.

    ``kind`` is ``"no_server"`` (nothing accepts connections there: retry), ``"plaintext_server"``
    (a TLS client, a server without TLS), ``"tls_server"`` (a plaintext client, a TLS server),
    ``"certificate_refused"`` (the server's TLS handshake refused the client's certificate) or
    ``"server_untrusted"`` (the client's CA did not sign the server's certificate, or not for this
    host); ``message`` says it in words, with what to do.
    """

    kind: str
    message: str

    @property
    def fatal(self) -> bool:
        """True when retrying cannot help."""
        return self.kind != "no_server"


def split_address(server: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> ``(host, port)``."""
    host, sep, port = server.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"server address must be HOST:PORT, got {server!r}")
    return host.strip("[]") or "localhost", int(port)


def _is_h2_settings(data: bytes) -> bool:
    return len(data) >= 9 and data[3] == 0x04  # a frame of type SETTINGS: an HTTP/2 (gRPC) server


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            break
        data += part
    return data


def _speaks_plain_h2(addr: tuple[str, int], timeout: float) -> bool:
    try:
        with socket.create_connection(addr, timeout=timeout) as sock:
            sock.sendall(_PREFACE)
            return _is_h2_settings(_recv(sock, 9))
    except OSError:
        return False


def _speaks_tls(addr: tuple[str, int], timeout: float) -> bool:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(addr, timeout=timeout) as raw, ctx.wrap_socket(raw) as tls:
            tls.version()
        return True
    except ssl.SSLError as exc:  # an alert from a TLS server (e.g. it wants a client certificate)
        return "WRONG_VERSION_NUMBER" not in str(exc) and "RECORD_LAYER" not in str(exc)
    except OSError:
        return False


def _alert(exc: ssl.SSLError) -> str | None:
    text = f"{exc.reason or ''} {exc}".upper()
    return next((name for name in _CERT_ALERTS if name in text), None)


def _own_certificate_problem(files: TlsFiles) -> str:
    """Why a server would refuse this client's certificate, judged from the client's own files."""
    import datetime as dt

    from cryptography import x509

    if not files.client_cert:
        return _CERT_ALERTS["CERTIFICATE_REQUIRED"]
    try:
        cert = x509.load_pem_x509_certificate(Path(files.client_cert).read_bytes())
        ca = x509.load_pem_x509_certificate(Path(files.ca_cert).read_bytes())
    except (OSError, ValueError) as exc:
        return f"this client's certificate cannot be read ({exc})"
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc < now:
        return (f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: ask the server's operator "
                "for new credentials (`fedloom certs --clients NAME --days N`)")
    if cert.not_valid_before_utc > now:
        return f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check the clock)"
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - ValueError, TypeError or InvalidSignature: not this CA's
        return _CERT_ALERTS["UNKNOWN_CA"]
    return ("the server does not accept it (it trusts another CA, or the certificate is not a client certificate): "
            "use the credentials from the same `fedloom certs` run as the server's")


def diagnose(server: str, *, tls: bool, files: TlsFiles | None = None, server_name: str | None = None,
             timeout: float = 3.0) -> Diagnosis | None:
    """Probe ``server``; a :class:`Diagnosis`, or ``None`` when nothing is wrong with the connection itself.

    Args:
        server: ``HOST:PORT``.
        tls: Whether the client connects with TLS.
        files: The client's CA, certificate and key (TLS only; without them the probe checks only that
            the server speaks TLS).
        server_name: The TLS name to verify instead of the host (as ``grpc.ssl_target_name_override``).
        timeout: Seconds per network operation.
    """
    try:
        addr = split_address(server)
        sock = socket.create_connection(addr, timeout=timeout)
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        return Diagnosis("no_server", f"no fedloom server at {server} ({why})")
    with sock:
        if not tls:
            sock.sendall(_PREFACE)
            try:
                answer = _recv(sock, 9)
            except OSError:
                answer = b""
            if _is_h2_settings(answer):
                return None
            if _speaks_tls(addr, timeout):
                return Diagnosis("tls_server", f"the server at {server} requires TLS, but this client connects in "
                                               "plaintext (--insecure): drop --insecure and connect with the "
                                               "credentials folder `fedloom certs` wrote for this client")
            return None
        if files is not None:
            ctx = ssl.create_default_context(cafile=str(files.ca_cert))
            if files.client_cert:
                ctx.load_cert_chain(str(files.client_cert), str(files.client_key) if files.client_key else None)
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        try:
            with ctx.wrap_socket(sock, server_hostname=server_name or addr[0]) as conn:
                conn.sendall(_PREFACE)
                answer = _recv(conn, 9)  # TLS 1.3: the server judges our certificate after the handshake
        except ssl.SSLCertVerificationError as exc:
            return Diagnosis("server_untrusted", f"the server at {server} presented a certificate this client does "
                                                 f"not trust ({exc.verify_message}): the CA certificate "
                                                 f"({files.ca_cert if files else 'none'}) must be the ca.pem of the "
                                                 "server's `fedloom certs` run, and the server certificate must "
                                                 "name this host (`fedloom certs --hosts`)")
        except ssl.SSLError as exc:
            alert = _alert(exc)
            if alert is not None:
                return Diagnosis("certificate_refused", f"the server at {server} refused this client's certificate: "
                                                        f"{_CERT_ALERTS[alert]}")
            if _speaks_plain_h2(addr, timeout):
                return Diagnosis("plaintext_server", f"the server at {server} speaks plaintext (it was started with "
                                                     "--insecure) but this client connects with TLS: serve with TLS "
                                                     "(drop the server's --insecure)")
            return None
        except OSError:
            if _speaks_plain_h2(addr, timeout):
                return Diagnosis("plaintext_server", f"the server at {server} speaks plaintext (it was started with "
                                                     "--insecure) but this client connects with TLS: serve with TLS "
                                                     "(drop the server's --insecure)")
            return None
    if not _is_h2_settings(answer) and files is not None:
        # gRPC servers close the connection after the handshake, with no alert, when they refuse a certificate
        return Diagnosis("certificate_refused", f"the server at {server} refused this client's certificate: "
                                                f"{_own_certificate_problem(files)}")
    return None
