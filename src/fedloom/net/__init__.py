"""Deployment over gRPC: a server that clients dial into, TLS, per-client authentication,
streamed parameters, heartbeats, reconnects and crash-consistent resume (see docs/deployment.md).
"""

from fedloom.net.auth import Authenticator, AuthError
from fedloom.net.certs import create_credentials
from fedloom.net.client import ClientRuntime, channel_credentials
from fedloom.net.config import ClientConfig, ServerConfig, load_deployment
from fedloom.net.deploy import build_client, build_pool, run_client, run_server
from fedloom.net.server import GrpcPool

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
