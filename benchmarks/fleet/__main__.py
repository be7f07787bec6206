"""Fleet benchmark: how many connected clients one server holds, and what rounds cost at that scale.

``python -m benchmarks.fleet`` starts a fedloom server (a :class:`~fedloom.net.GrpcPool`, TLS,
one token per client) in its own process and ramps up simulated clients (``benchmarks/fleet/sim.py``:
``grpc.aio`` streams, a few processes, loopback only) in steps. At each step it waits for every
client to connect, lets the fleet idle (heartbeats only) and measures the server's RSS, CPU and
threads. At the largest step reached it times rounds of 100 and 1,000 sampled clients, then makes 30%
of the fleet disconnect at once in the middle of a 1,000-client round.

The same run measures the threaded server of an older checkout (``--old-src``, e.g. a worktree of
``f2311d6``) side by side, ramping it until it stops coping (a step whose clients do not all connect
in time, or ``--max-minutes`` spent). Results: ``benchmarks/fleet/RESULTS.md`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fedloom.net.certs import create_credentials, hash_token

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


class Proc:
    """A child speaking one JSON line per command."""

    def __init__(self, args: list[str], src: Path, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
        self.log = log.open("w")
        self.p = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited ({self.p.poll()}); see {self.log.name}")
        return json.loads(line)

    def ask(self, line: str) -> dict[str, Any]:
        self.send(line)
        return self.read()

    def quit(self) -> None:
        try:
            self.send("quit")
            self.p.wait(30)
        except Exception:  # noqa: BLE001 - a child that hangs is killed
            self.p.kill()
            self.p.wait(5)
        self.log.close()


def run_server(kind: str, src: Path, work: Path, args: argparse.Namespace, t_end: float) -> dict[str, Any]:
    """Ramp one server through the steps; rounds and the 30% disconnect at the largest step reached."""
    print(f"== {kind} server ({src})", flush=True)
    server = Proc(["-m", "benchmarks.fleet.serve", "--creds", str(work / "creds"), "--token-hashes",
                   str(work / "hashes.json"), "--max-clients", str(max(args.steps) + 100),
                   "--heartbeat-s", str(args.heartbeat_s)], src, work / f"{kind}-server.log")
    hello = server.read()
    base = server.ask("stats")
    target = f"127.0.0.1:{hello['port']}"
    out: dict[str, Any] = {"kind": kind, "base": base, "steps": [], "rounds": {}, "stopped": None}
    sims: list[Proc] = []
    have = 0
    try:
        for step in args.steps:
            if time.monotonic() > t_end:
                out["stopped"] = f"time budget spent before {step} clients"
                break
            while have < step:  # a process per --per-process clients
                n = min(args.per_process, step - have)
                sims.append(Proc(["-m", "benchmarks.fleet.sim", "--target", target, "--ca",
                                  str(work / "creds" / "ca.pem"), "--tokens", str(work / "tokens.json"),
                                  "--first", str(have), "--count", str(n), "--heartbeat-s", str(args.heartbeat_s)],
                                 ROOT / "src", work / f"{kind}-sim{len(sims)}.log"))
                have += n
            t0 = time.monotonic()
            waited = server.ask(f"wait {step} {args.connect_timeout_s}")
            row: dict[str, Any] = {"clients": step, "connected": waited["connected"],
                                   "connect_s": time.monotonic() - t0}
            time.sleep(args.settle_s)
            a = server.ask("stats")
            time.sleep(args.idle_s)
            b = server.ask("stats")
            row.update(connected_after=b["connected"], rss_mb=b["rss_mb"], threads=b["threads"],
                       cpu_pct=100 * (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"]), idle_window_s=b["t"] - a["t"],
                       rss_per_client_kb=1024 * (b["rss_mb"] - base["rss_mb"]) / max(1, b["connected"]))
            errors: dict[str, int] = {}
            for s in sims:
                for k, v in s.ask("stats")["errors"].items():
                    errors[k] = errors.get(k, 0) + v
            row["client_errors"] = errors
            out["steps"].append(row)
            print(f"   {row}", flush=True)
            if b["connected"] < step * 0.99:
                out["stopped"] = f"held {b['connected']} of {step} clients ({errors or 'no client errors'})"
                break
        held = out["steps"][-1]["connected_after"] if out["steps"] else 0
        for cohort in (100, 1000):
            if held < cohort:
                continue
            rounds = [server.ask(f"round {cohort} {args.round_timeout_s} 0") for _ in range(args.rounds)]
            out["rounds"][cohort] = rounds
            print(f"   cohort {cohort}: {[round(r['wall_s'], 2) for r in rounds]}", flush=True)
        if held >= 1000 and time.monotonic() < t_end:
            out["disconnect"] = disconnect(server, sims, held, args)
            print(f"   disconnect: {out['disconnect']}", flush=True)
    finally:
        for s in sims:
            s.quit()
        server.quit()
    return out


def disconnect(server: Proc, sims: list[Proc], held: int, args: argparse.Namespace) -> dict[str, Any]:
    """30% of every simulated process's clients drop at once, mid-round (clients answer after 2 s)."""
    server.send(f"round 1000 {args.round_timeout_s} 2.0")
    time.sleep(0.5)
    t0 = time.monotonic()
    for s in sims:
        s.send("drop 0.3")
    for s in sims:
        s.read()
    during = server.read()
    expect = held - int(0.3 * held)
    gone_s = None
    while time.monotonic() - t0 < 60:
        st = server.ask("stats")
        if st["connected"] <= expect + held // 100:
            gone_s = time.monotonic() - t0
            break
        time.sleep(0.25)
    after = server.ask(f"round 1000 {args.round_timeout_s} 0")
    return {"round_during": during, "seen_gone_s": gone_s, "connected_after": server.ask("stats")["connected"],
            "round_after": after}


def write_results(results: list[dict[str, Any]], args: argparse.Namespace,
                  load: tuple[list[float], list[float]]) -> None:
    (HERE / "results.json").write_text(json.dumps({"args": vars(args), "load": load, "results": results}, indent=1))
    lines = ["# Fleet: thousands of connected clients on one server", "",
             "One fedloom server process (TLS, one token per client) on this 2-core machine, and simulated clients "
             "(`benchmarks/fleet/sim.py`: one `grpc.aio` stream and TLS connection each, heartbeat every "
             f"{args.heartbeat_s:g} s, answering each task with a fixed update: the 4 KB model it received) in "
             f"processes of {args.per_process} on 127.0.0.1. The `asyncio` server is this tree's; the threaded "
             f"one is `{args.old_src}` (commit f2311d6), measured in the same run. Machine load (1-min average, "
             f"shared with other jobs): {load[0][0]:.1f} at the start, {load[1][0]:.1f} at the end; run under "
             "`nice`.", ""]
    lines += ["## Connected clients held", "",
              "| server | clients | connected in time | connect time (s) | still connected after idling | "
              "server RSS (MB) | RSS / client (KB) | server CPU idle (% of a core) | server threads | "
              "client-side stream errors (retried) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        for s in r["steps"]:
            errs = ", ".join(f"{k} {v}" for k, v in s["client_errors"].items()) or "none"
            lines.append(f"| {r['kind']} | {s['clients']:,} | {s['connected']:,} | {s['connect_s']:.1f} | "
                         f"{s['connected_after']:,} | {s['rss_mb']:.0f} | {s['rss_per_client_kb']:.0f} | "
                         f"{s['cpu_pct']:.1f} | {s['threads']:,} | {errs} |")
    lines += ["", "RSS / client: (RSS with the clients connected - RSS of the fresh server) / clients connected. "
              f"CPU: the server's user+system time over about {args.idle_s:g} s of an idle fleet (heartbeats only), "
              f"after {args.settle_s:g} s to settle. Client-side stream errors: streams a simulated client saw fail "
              "(it retries up to 5 times).", ""]
    for r in results:
        lines.append(f"- **{r['kind']}**: " + (r["stopped"] or "held every step"))
    lines += ["", "## Rounds", "", "| server | clients connected | cohort | round time (s), median of "
              f"{args.rounds} | failures |", "|---|---:|---:|---:|---:|"]
    for r in results:
        held = r["steps"][-1]["connected_after"] if r["steps"] else 0
        for cohort, rounds in r["rounds"].items():
            med = statistics.median(x["wall_s"] for x in rounds)
            lines.append(f"| {r['kind']} | {held:,} | {cohort} | {med:.2f} | {sum(x['failed'] for x in rounds)} |")
    lines += ["", "A round here is the pool's `fit` over the sampled cohort (task out, fixed update back, "
              "validated against the model's names, shapes and dtypes), without aggregation.", "",
              "## 30% of the fleet disconnects at once", ""]
    for r in results:
        d = r.get("disconnect")
        if not d:
            continue
        rd, ra = d["round_during"], d["round_after"]
        seen = f"{d['seen_gone_s']:.1f} s" if d["seen_gone_s"] is not None else "not within 60 s"
        lines.append(f"- **{r['kind']}**: during a 1,000-client round (each client answers after 2 s) 30% of the "
                     f"fleet dropped: the round ended in {rd['wall_s']:.1f} s with {rd['ok']} results and "
                     f"{rd['failed']} failures ({', '.join(f'{k}: {v}' for k, v in rd['reasons'].items())}); the "
                     f"server's count fell to {d['connected_after']:,} within {seen}; the next round of "
                     f"{ra['cohort']:,} clients: "
                     f"{ra['ok']} results, {ra['failed']} failures, {ra['wall_s']:.2f} s.")
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description="fleet benchmark: connected clients held, rounds, mass disconnect")
    ap.add_argument("--steps", default="500,1000,2000,3500,5000", help="client counts to ramp through")
    ap.add_argument("--per-process", type=int, default=1250, help="simulated clients per process")
    ap.add_argument("--heartbeat-s", type=float, default=5.0)
    ap.add_argument("--settle-s", type=float, default=5.0)
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--connect-timeout-s", type=float, default=120.0)
    ap.add_argument("--round-timeout-s", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--servers", default="asyncio,threaded")
    ap.add_argument("--old-src", default="/tmp/fleet-old/src", help="src/ of a checkout with the threaded server")
    ap.add_argument("--max-minutes", type=float, default=12.0, help="per server")
    args = ap.parse_args()
    args.steps = [int(s) for s in args.steps.split(",")]
    load_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        work = Path(tmp)
        create_credentials(work / "creds", clients=[])
        n = max(args.steps)
        tokens = {f"c{i:05d}": secrets.token_hex(16) for i in range(n)}
        (work / "tokens.json").write_text(json.dumps(tokens))
        (work / "hashes.json").write_text(json.dumps({k: hash_token(v) for k, v in tokens.items()}))
        if "threaded" in args.servers.split(",") and not Path(args.old_src).is_dir():
            raise SystemExit(f"--old-src {args.old_src} does not exist: make a checkout of the threaded server with "
                             "`git worktree add /tmp/fleet-old f2311d6`, or pass --servers asyncio")
        results = []
        for kind in args.servers.split(","):
            src = ROOT / "src" if kind == "asyncio" else Path(args.old_src)
            results.append(run_server(kind, src, work, args, time.monotonic() + 60 * args.max_minutes))
            logs = Path(tempfile.gettempdir()) / "fedloom-fleet-logs"  # children's stderr, for a failed step
            logs.mkdir(exist_ok=True)
            for f in work.glob(f"{kind}-*.log"):
                (logs / f.name).write_text(f.read_text()[-20000:])
    write_results(results, args, (load_start, list(os.getloadavg())))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
