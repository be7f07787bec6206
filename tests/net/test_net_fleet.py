"""The server at fleet scale: idle connections cost no threads, and fit may be called from many threads."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from net_helpers import AddOne

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.net import Authenticator, GrpcPool
from fedloom.net.certs import hash_token

ROOT = Path(__file__).resolve().parents[2]
W = Parameters({"w": np.zeros(3, np.float32)})


def _threads() -> int:
    """Threads of this process as the kernel counts them (grpc's C threads included)."""
    return len(os.listdir("/proc/self/task"))


def _loops() -> int:
    return sum(t.name == "fedloom-grpc-loop" for t in threading.enumerate())


def _fleet(tmp_path: Path, creds: Path, address: str, tokens: dict[str, str], first: int, count: int):
    (tmp_path / "tokens.json").write_text(json.dumps(tokens))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fleet.sim", "--target", address, "--ca", str(creds / "ca.pem"),
         "--tokens", str(tmp_path / "tokens.json"), "--first", str(first), "--count", str(count),
         "--heartbeat-s", "0.5"], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
def test_two_hundred_connected_clients_add_no_threads(creds, tmp_path):
    # before: the server held every client on a thread of its pool plus a reader thread (about 400 more)
    loops = _loops()
    tokens = {f"c{i:03d}": secrets.token_hex(16) for i in range(200)}
    auth = Authenticator(token_hashes={n: hash_token(t) for n, t in tokens.items()})
    server_creds = grpc.ssl_server_credentials([((creds / "server.key").read_bytes(),
                                                 (creds / "server.pem").read_bytes())])
    pool = GrpcPool(address="127.0.0.1:0", authenticator=auth, server_credentials=server_creds, max_clients=256,
                    heartbeat_s=0.5, heartbeat_timeout_s=10.0).start()
    procs = []
    try:
        address = f"127.0.0.1:{pool.port}"
        procs.append(_fleet(tmp_path, creds, address, tokens, 0, 2))
        assert pool.wait_for_clients(2, 30)
        time.sleep(1.5)  # heartbeats flow both ways: every thread the server uses has started
        before = _threads()
        procs.append(_fleet(tmp_path, creds, address, tokens, 2, 198))
        assert pool.wait_for_clients(200, 60), f"only {len(pool.connected())} connected"
        time.sleep(1.5)  # three heartbeat periods with 200 clients
        after = _threads()
        assert after - before <= 4, f"{after - before} more threads for 198 more clients"
        out = pool.fit([(c, FitIns(W, {"round": 1})) for c in pool.connected()], expected=W.spec(), timeout=30)
        assert len(out.results) == 200 and not out.failures
        assert all(r.parameters["w"].tolist() == [0.0, 0.0, 0.0] for _, r in out.results)
        assert _threads() - before <= 4
    finally:
        for p in procs:
            p.communicate("quit\n", timeout=20)
        pool.close(timeout_s=5)
    assert _loops() == loops


def test_fit_from_many_threads_at_once_gets_each_caller_its_own_results(harness):
    h = harness(min_clients=3)
    for name in ("0", "1", "2"):
        h.start(name, AddOne(delay=0.4))
    h.pool.available()
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            params = Parameters({"w": np.full(3, float(i), np.float32)})
            results[i] = h.pool.fit([(str(i % 3), FitIns(params, {"round": i}))], expected=params.spec(), timeout=20)
        except BaseException as exc:
            errors.append(exc)

    t0 = time.monotonic()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    assert not errors
    for i in range(9):
        out = results[i]
        assert not out.failures and len(out.results) == 1
        cid, res = out.results[0]
        assert cid == str(i % 3) and res.metrics == {"r": i} and res.parameters["w"].tolist() == [i + 1.0] * 3
    # three tasks queue on each client (it runs one at a time): about 1.2 s, not the 3.6 s of one caller at a time
    assert elapsed < 3.0, elapsed


def test_a_stopped_pool_fails_new_tasks_and_leaves_no_thread(harness):
    loops = _loops()
    h = harness(min_clients=1)
    h.start("0", AddOne())
    h.pool.available()
    assert _loops() == loops + 1
    h.pool.close(timeout_s=4)
    assert _loops() == loops
    out = h.pool.fit([("0", FitIns(W, {"round": 1}))], expected=W.spec(), timeout=2)
    assert out.failures and not out.results


def test_a_pool_built_but_never_started_holds_no_thread_and_closes():
    loops, threads = _loops(), threading.active_count()
    pool = GrpcPool(address="127.0.0.1:0", authenticator=Authenticator())
    assert pool.port > 0 and _loops() == loops and threading.active_count() == threads
    pool.close()
    assert _loops() == loops


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_the_open_file_limit_is_raised_for_max_clients_or_the_problem_is_said():
    import resource

    from fedloom.net.server import FD_MARGIN, ensure_fd_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))
        want = 3000
        problem = ensure_fd_limit(want)
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if hard == resource.RLIM_INFINITY or hard >= want + FD_MARGIN:
            assert problem is None and now >= want + FD_MARGIN
        else:
            assert now == hard and "ulimit -n" in problem and "max_clients" in problem
        big = ensure_fd_limit(10**9)  # beyond any hard limit
        assert big is not None and "raise the limit" in big
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
