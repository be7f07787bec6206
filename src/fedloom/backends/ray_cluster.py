"""A Ray cluster of ``ray start`` processes on this machine: the multi-machine path, tried on one.

:class:`LocalRayCluster` runs exactly what an operator runs on a real cluster, ``ray start --head``
and ``ray start --address HEAD:PORT`` on each worker node, only all on this machine, each node with
a bounded CPU count and object store. fedloom then joins it like any cluster, by address
(``--ray-address`` / ``[execution] ray_address``); moving to real machines changes only the address.

The nodes run with ``--block`` as children of this process, so :meth:`LocalRayCluster.stop` ends
exactly them (and Ray's own processes they started), never another Ray on the machine (which
``ray stop`` would). Every port is picked free, and Ray's token authentication uses a token written
in the cluster's own temporary folder (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH``): a driver
joins with :meth:`LocalRayCluster.driver_env` in its environment.

Example::

    with LocalRayCluster(workers=1, cpus_per_node=1) as cluster:
        cluster.join_from_here()
        run_simulation(RunConfig(backend="ray", ray_address=cluster.address, dataset="iris"))
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from fedloom.errors import ConfigError

__all__ = ["LocalRayCluster"]

_STARTED = "Ray runtime started"  # what `ray start --block` prints once its node is up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise ConfigError("the `ray` command was not found: pip install 'fedloom[ray]'")
    return found


class LocalRayCluster:
    """One head and ``workers`` worker nodes, each a ``ray start --block`` process on this machine.

    Args:
        workers: Worker nodes besides the head.
        cpus_per_node: CPUs each node offers (``--num-cpus``).
        object_store_bytes: Object store of each node (``--object-store-memory``; Ray's minimum is 75 MB).
        start_timeout_s: Longest wait for every node to come up.
    """

    def __init__(self, *, workers: int = 1, cpus_per_node: int = 1, object_store_bytes: int = 100_000_000,
                 start_timeout_s: float = 90.0) -> None:
        if workers < 0 or cpus_per_node < 1:
            raise ConfigError("workers must be >= 0 and cpus_per_node >= 1")
        self.workers = workers
        self.cpus_per_node = cpus_per_node
        self.object_store_bytes = object_store_bytes
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self._dir: Path | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` of the head's GCS: what ``--ray-address`` takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def num_cpus(self) -> int:
        """CPUs of the whole cluster."""
        return (1 + self.workers) * self.cpus_per_node

    def driver_env(self) -> dict[str, str]:
        """Environment a driver (or another ``ray start``) needs to join: Ray's token authentication."""
        if self._dir is None:
            raise RuntimeError("start the cluster first")
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self._dir / "auth_token")}

    def join_from_here(self) -> None:
        """Make this process a driver of the cluster: set :meth:`driver_env` in its environment.

        Ray caches its authentication settings when first used; if it was already imported, that cache
        is refreshed (as Ray's own tests do) so the next ``ray.init(address=...)`` sends this cluster's token.
        """
        os.environ.update(self.driver_env())
        if "ray" in sys.modules:
            with contextlib.suppress(ImportError, AttributeError):
                from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

                Config.initialize("")
                AuthenticationTokenLoader.instance().reset_cache()

    def start(self) -> LocalRayCluster:
        """Start the head and the workers; return once every node says it is up.

        Raises:
            RuntimeError: a node exited or did not come up within ``start_timeout_s`` (its log is quoted).
        """
        self._dir = Path(tempfile.mkdtemp(prefix="fl-ray-"))  # short: Ray puts unix sockets under it
        token = self._dir / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.port = _free_port()
        try:
            self._launch(["--head", f"--port={self.port}", "--include-dashboard=false",
                          f"--dashboard-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
                          f"--temp-dir={self._dir}"], "head")
            for i in range(self.workers):  # they retry until the head answers: start them all at once
                self._launch([f"--address={self.address}"], f"worker{i}")
            for proc, log in zip(self.procs, self.logs, strict=True):
                self._wait_up(proc, log)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, args: list[str], name: str) -> None:
        assert self._dir is not None
        log = self._dir / f"{name}.log"
        node = ["--num-cpus", str(self.cpus_per_node), "--num-gpus", "0",
                f"--object-store-memory={self.object_store_bytes}", "--node-ip-address=127.0.0.1",
                f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
                f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}",
                "--disable-usage-stats", "--block"]
        env = {**os.environ, **self.driver_env()}
        with log.open("wb") as out:
            self.procs.append(subprocess.Popen([_ray_cli(), "start", *args, *node], stdout=out,
                                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                               start_new_session=True))
        self.logs.append(log)

    def _wait_up(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if _STARTED in text:
                return
            if proc.poll() is not None:
                raise RuntimeError(f"`ray start` exited with status {proc.returncode}: {text[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"a Ray node did not start within {self.start_timeout_s:.0f}s: "
                           f"{log.read_text(errors='replace')[-2000:]}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """End the nodes this object started (workers first), then remove its temporary folder."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the Ray processes it started
        deadline = time.monotonic() + timeout_s
        for proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own process group (start_new_session)
                proc.wait(10)
        self.procs = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
