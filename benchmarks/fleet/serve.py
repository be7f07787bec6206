"""The server side of the fleet benchmark: a GrpcPool in its own process, driven over stdin/stdout.

It imports ``fedloom`` from ``PYTHONPATH``, so the same script serves the current (asyncio) server
and the threaded one of an older checkout. Commands (one a line) and their JSON answers::

    wait N T          wait up to T s for N connected: {"connected": n, "s": seconds}
    stats             {"connected": n, "rss_mb": x, "cpu_s": x, "t": monotonic s, "threads": n}
    round K T D       fit K clients sampled from the connected ones (deadline T s, each answers after D s):
                      {"ok": n, "failed": n, "wall_s": x, "reasons": {reason: n}}
    quit              close the pool and exit
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.net import Authenticator, GrpcPool


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--creds", required=True)
    ap.add_argument("--token-hashes", required=True)
    ap.add_argument("--max-clients", type=int, required=True)
    ap.add_argument("--heartbeat-s", type=float, default=5.0)
    ap.add_argument("--model-floats", type=int, default=1000)
    args = ap.parse_args()
    creds = Path(args.creds)
    server_creds = grpc.ssl_server_credentials([((creds / "server.key").read_bytes(),
                                                 (creds / "server.pem").read_bytes())])
    auth = Authenticator(token_hashes=json.loads(Path(args.token_hashes).read_text()))
    pool = GrpcPool(address="127.0.0.1:0", authenticator=auth, server_credentials=server_creds,
                    max_clients=args.max_clients, heartbeat_s=args.heartbeat_s,
                    heartbeat_timeout_s=6 * args.heartbeat_s, max_connects_per_minute=600).start()
    params = Parameters({"w": np.zeros(args.model_floats, np.float32)})
    rng = random.Random(0)
    print(json.dumps({"port": pool.port, "rss_mb": _rss_mb(), "threads": len(os.listdir("/proc/self/task"))}),
          flush=True)
    rnd = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "wait":
            t0 = time.monotonic()
            pool.wait_for_clients(int(cmd[1]), float(cmd[2]))
            out: dict = {"connected": len(pool.connected()), "s": time.monotonic() - t0}
        elif cmd[0] == "stats":
            out = {"connected": len(pool.connected()), "rss_mb": _rss_mb(), "cpu_s": _cpu_s(), "t": time.monotonic(),
                   "threads": len(os.listdir("/proc/self/task"))}
        elif cmd[0] == "round":
            rnd += 1
            connected = pool.connected()
            cohort = rng.sample(connected, min(int(cmd[1]), len(connected)))
            t0 = time.monotonic()
            res = pool.fit([(c, FitIns(params, {"round": rnd, "delay_s": float(cmd[3])})) for c in cohort],
                           expected=params.spec(), timeout=float(cmd[2]))
            reasons = collections.Counter(f.reason.split(":")[0][:60] for f in res.failures)
            out = {"ok": len(res.results), "failed": len(res.failures), "wall_s": time.monotonic() - t0,
                   "cohort": len(cohort), "reasons": dict(reasons)}
        else:
            out = {"error": f"unknown command {cmd[0]!r}"}
        print(json.dumps(out), flush=True)
    pool.close("benchmark over", timeout_s=10)


if __name__ == "__main__":
    main()
