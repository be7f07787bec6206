"""The far ends of the benchmark, run in their own processes: echo clients and a raw-socket echo."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import numpy as np

from fedloom.core.client import Client
from fedloom.core.types import EvaluateRes, FitRes


class Echo(Client):
    """Returns the parameters it receives (so the round trip moves the same bytes both ways)."""

    def get_parameters(self, config):
        raise NotImplementedError

    def fit(self, parameters, config):
        return FitRes(parameters, 1)

    def evaluate(self, parameters, config):
        return EvaluateRes(0.0, 1)


def run_echo_clients(address: str, names: list[str]) -> None:
    """Serve ``names`` echo clients (one gRPC stream each) until the server says goodbye."""
    from fedloom.net import ClientRuntime

    threads = []
    for name in names:
        rt = ClientRuntime(Echo(), server=address, name=name, backoff_initial_s=0.05, backoff_max_s=0.5,
                           heartbeat_s=5.0, server_timeout_s=600.0)
        t = threading.Thread(target=rt.run, daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


def recv_exact(sock: socket.socket, buf: memoryview) -> None:
    """Fill ``buf`` from ``sock`` (raises ConnectionError when the peer closes first)."""
    got = 0
    while got < len(buf):
        n = sock.recv_into(buf[got:])
        if n == 0:
            raise ConnectionError("peer closed")
        got += n


def tls_server_context(tls_dir: str) -> ssl.SSLContext:
    """The server side of the raw TLS baseline: the gRPC server's own certificate and key."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(Path(tls_dir) / "server.pem", Path(tls_dir) / "server.key")
    return ctx


def tls_client_context(tls_dir: str) -> ssl.SSLContext:
    """The client side of the raw TLS baseline: trusts the same CA as the gRPC clients."""
    return ssl.create_default_context(cafile=str(Path(tls_dir) / "ca.pem"))


def run_raw_echo(port: int, tls_dir: str = "") -> None:
    """Accept one connection; echo length-prefixed messages back until the peer closes.

    With ``tls_dir`` (a `fedloom certs` folder) the connection is TLS with the gRPC server's
    certificate: the same handshake and record encryption a TLS gRPC stream pays, nothing else.
    """
    with socket.create_server(("127.0.0.1", port)) as srv:
        raw, _ = srv.accept()
        conn = tls_server_context(tls_dir).wrap_socket(raw, server_side=True) if tls_dir else raw
        with conn:
            buf = np.empty(0, np.uint8)
            while True:
                head = bytearray(8)
                try:
                    recv_exact(conn, memoryview(head))
                except ConnectionError:
                    return
                size = int.from_bytes(head, "little")
                if buf.size != size:
                    buf = np.empty(size, np.uint8)
                recv_exact(conn, memoryview(buf))
                conn.sendall(head)
                conn.sendall(memoryview(buf))


def echo_entry(address: str, names: list[str], tls_dir: str) -> None:
    """Echo clients in this process, over TLS when ``tls_dir`` (a `fedloom certs` dir) is given."""
    if tls_dir:
        from fedloom.net import ClientRuntime, channel_credentials

        rts = [ClientRuntime(Echo(), server=address, name=n, heartbeat_s=5.0, server_timeout_s=600.0,
                             credentials=channel_credentials(ca_cert=Path(tls_dir) / "ca.pem")) for n in names]
        ts = [threading.Thread(target=r.run, daemon=True) for r in rts]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    else:
        run_echo_clients(address, names)
