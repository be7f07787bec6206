"""Deployment over gRPC: a server that clients dial into, TLS, per-client authentication,
streamed parameters, heartbeats, reconnects and crash-consistent resume (see docs/deployment.md).

Names load on first use (the package itself imports nothing heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.net.auth import Authenticator, AuthError
    from fedloom.net.certs import create_credentials
    from fedloom.net.client import ClientRuntime, channel_credentials
    from fedloom.net.config import ClientConfig, ServerConfig, load_deployment
    from fedloom.net.deploy import build_client, build_pool, run_client, run_server
    from fedloom.net.server import GrpcPool

_EXPORTS = {
    "Authenticator": "fedloom.net.auth",
    "AuthError": "fedloom.net.auth",
    "create_credentials": "fedloom.net.certs",
    "ClientRuntime": "fedloom.net.client",
    "channel_credentials": "fedloom.net.client",
    "ClientConfig": "fedloom.net.config",
    "ServerConfig": "fedloom.net.config",
    "load_deployment": "fedloom.net.config",
    "build_client": "fedloom.net.deploy",
    "build_pool": "fedloom.net.deploy",
    "run_client": "fedloom.net.deploy",
    "run_server": "fedloom.net.deploy",
    "GrpcPool": "fedloom.net.server",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AuthError",
    "Authenticator",
    "ClientConfig",
    "ClientRuntime",
    "GrpcPool",
    "ServerConfig",
    "build_client",
    "build_pool",
    "channel_credentials",
    "create_credentials",
    "load_deployment",
    "run_client",
    "run_server",
]
