"""Test helpers for fedloom.net: a toy client and an in-process TLS server with client threads."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import numpy as np

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import EvaluateRes, FitRes
from fedloom.net import Authenticator, ClientRuntime, GrpcPool, channel_credentials
from fedloom.net.auth import load_token_hashes


class AddOne(Client):
    """Returns the parameters plus one (and an integer extra), after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail, self.calls = delay, fail, 0

    def get_parameters(self, config):
        return Parameters({"w": np.zeros(3, np.float32)})

    def fit(self, parameters, config):
        self.calls += 1
        if self.fail:
            raise RuntimeError("disk on fire")
        threading.Event().wait(self.delay)
        return FitRes(Parameters({k: v + 1 for k, v in parameters.items()}), 10, {"r": config.get("round", 0)},
                      {"count": Parameters({"n": np.array([self.calls], np.int64)})})

    def evaluate(self, parameters, config):
        return EvaluateRes(float(parameters["w"].sum()), 4, {"acc": 0.5})


class Harness:
    """A TLS + token GrpcPool on a free port and client runtimes in threads."""

    def __init__(self, creds: Path, **pool_kwargs) -> None:
        auth = Authenticator(token_hashes=load_token_hashes(creds / "tokens.json"), allowed=["0", "1", "2"])
        server_creds = grpc.ssl_server_credentials(
            [((creds / "server.key").read_bytes(), (creds / "server.pem").read_bytes())])
        kwargs = {"heartbeat_s": 0.5, "heartbeat_timeout_s": 3.0, "wait_clients_s": 10.0, **pool_kwargs}
        self.pool = GrpcPool(address="127.0.0.1:0", authenticator=auth, server_credentials=server_creds,
                             **kwargs).start()
        self.creds = creds
        self.runtimes: list[ClientRuntime] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.pool.port}"

    def runtime(self, name: str, client: Client, **kwargs) -> ClientRuntime:
        cdir = self.creds / "clients" / name
        opts = {"heartbeat_s": 0.5, "server_timeout_s": 5.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.2,
                **kwargs}
        return ClientRuntime(client, server=self.address, credentials=channel_credentials(ca_cert=cdir / "ca.pem"),
                             token=(cdir / "token").read_text(), **opts)

    def start(self, name: str, client: Client, **kwargs) -> ClientRuntime:
        rt = self.runtime(name, client, **kwargs)

        def run() -> None:
            try:
                rt.run()
            except BaseException as exc:  # surfaced by the test
                self.errors.append(exc)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.runtimes.append(rt)
        self.threads.append(t)
        return rt

    def close(self) -> None:
        for rt in self.runtimes:
            rt.stop()
        self.pool.close()
        for t in self.threads:
            t.join(5)
