"""Measure the gRPC transport: round trips of 1 MB / 100 MB / 1 GB vs a raw socket, and 100 clients.

For each payload size, the server (this process) sends the parameters to an echo client in another
process and receives them back, through :class:`~fedloom.net.GrpcPool` (chunked streaming, plaintext
and TLS); the baseline sends the same bytes over a plain TCP socket to an echo process. Both sides
are measured in the same run, interleaved, repeated; medians are reported (the machine is shared).
Peak RSS of this process is reported to show that 1 GB streams rather than being copied.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import resource
import socket
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.transport.peers import echo_entry, recv_exact, run_echo_clients, run_raw_echo, tls_client_context
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.net import Authenticator, GrpcPool, create_credentials

MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grpc_pool(tls_dir: Path | None, *, min_clients: int = 1) -> GrpcPool:
    creds = None
    if tls_dir is not None:
        import grpc

        creds = grpc.ssl_server_credentials([((tls_dir / "server.key").read_bytes(),
                                              (tls_dir / "server.pem").read_bytes())])
    return GrpcPool(address="127.0.0.1:0", authenticator=Authenticator(), server_credentials=creds,
                    min_clients=min_clients, heartbeat_s=30.0, heartbeat_timeout_s=600.0).start()


def grpc_echo_proc(ctx, pool: GrpcPool, names: list[str], tls_dir: Path | None):  # noqa: ANN001, ANN201
    proc = ctx.Process(target=echo_entry, args=(f"127.0.0.1:{pool.port}", names, str(tls_dir) if tls_dir else ""),
                       daemon=True)
    proc.start()
    return proc


def grpc_round_trip(pool: GrpcPool, params: Parameters, cids: list[str]) -> float:
    t0 = time.perf_counter()
    out = pool.fit([(c, FitIns(params, {})) for c in cids], expected=params.spec(), timeout=None)
    dt = time.perf_counter() - t0
    if out.failures:
        raise RuntimeError(f"failures: {out.failures}")
    del out
    return dt


def raw_round_trip(sock: socket.socket, payload: np.ndarray, back: np.ndarray) -> float:
    t0 = time.perf_counter()
    sock.sendall(payload.nbytes.to_bytes(8, "little"))
    sock.sendall(memoryview(payload))
    head = bytearray(8)
    recv_exact(sock, memoryview(head))
    recv_exact(sock, memoryview(back))
    return time.perf_counter() - t0


def raw_connect(port: int, tls_dir: Path | None) -> socket.socket:
    """Connect to a raw echo peer; over TLS (same CA and server certificate as gRPC) when ``tls_dir``."""
    for _ in range(200):
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            break
        except ConnectionRefusedError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"the raw echo peer on port {port} did not start")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls_dir is None:
        return sock
    return tls_client_context(str(tls_dir)).wrap_socket(sock, server_hostname="127.0.0.1")


def bench_sizes(sizes_mb: list[int], reps: dict[int, int], tls_dir: Path) -> list[dict]:
    ctx = mp.get_context("spawn")
    plain = grpc_pool(None)
    tls = grpc_pool(tls_dir)
    peers = [grpc_echo_proc(ctx, plain, ["echo"], None), grpc_echo_proc(ctx, tls, ["echo"], tls_dir)]
    raw_port, tls_port = free_port(), free_port()
    for port, d in ((raw_port, ""), (tls_port, str(tls_dir))):
        peers.append(ctx.Process(target=run_raw_echo, args=(port, d), daemon=True))
        peers[-1].start()
    assert plain.wait_for_clients(1, 120) and tls.wait_for_clients(1, 120)
    socks = {"raw": raw_connect(raw_port, None), "raw_tls": raw_connect(tls_port, tls_dir)}
    rows = []
    try:
        for size in sizes_mb:
            n = size * MB // 4
            params = Parameters({"w": np.ones(n, np.float32)})
            payload = params["w"].view(np.uint8).reshape(-1)
            back = np.empty_like(payload)
            times: dict[str, list[float]] = {"raw": [], "raw_tls": [], "grpc": [], "grpc_tls": []}
            grpc_round_trip(plain, params, ["echo"])  # warm-up
            grpc_round_trip(tls, params, ["echo"])
            for sock in socks.values():
                raw_round_trip(sock, payload, back)
            for _ in range(reps.get(size, 3)):  # interleaved
                times["raw"].append(raw_round_trip(socks["raw"], payload, back))
                times["raw_tls"].append(raw_round_trip(socks["raw_tls"], payload, back))
                times["grpc"].append(grpc_round_trip(plain, params, ["echo"]))
                times["grpc_tls"].append(grpc_round_trip(tls, params, ["echo"]))
            med = {k: statistics.median(v) for k, v in times.items()}
            row = {"size_mb": size, **{f"{k}_s": v for k, v in med.items()},
                   "grpc_mb_s": 2 * size / med["grpc"], "grpc_tls_mb_s": 2 * size / med["grpc_tls"],
                   "raw_mb_s": 2 * size / med["raw"],
                   "ratio": med["grpc"] / med["raw"], "ratio_tls": med["grpc_tls"] / med["raw_tls"],
                   "reps": len(times["raw"]), "peak_rss_mb": rss_mb()}
            print(row, flush=True)
            rows.append(row)
            del params, payload, back
    finally:
        for sock in socks.values():
            sock.close()
        plain.close()
        tls.close()
        for p in peers:
            p.join(10)
            if p.is_alive():
                p.kill()
    return rows


def bench_many(num_clients: int, rounds: int, size_kb: int) -> dict:
    ctx = mp.get_context("spawn")
    pool = grpc_pool(None, min_clients=num_clients)
    names = [str(i) for i in range(num_clients)]
    per_proc = 25
    t0 = time.perf_counter()
    procs = [ctx.Process(target=run_echo_clients, args=(f"127.0.0.1:{pool.port}", names[i : i + per_proc]),
                         daemon=True) for i in range(0, num_clients, per_proc)]
    for p in procs:
        p.start()
    assert pool.wait_for_clients(num_clients, 300), f"only {len(pool.connected())} connected"
    connect_s = time.perf_counter() - t0
    params = Parameters({"w": np.ones(size_kb * 1024 // 4, np.float32)})
    cids = pool.available()
    times = [grpc_round_trip(pool, params, cids) for _ in range(rounds)]
    pool.close()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    row = {"clients": num_clients, "payload_kb": size_kb, "round_s_median": statistics.median(times),
           "round_s_min": min(times), "rounds": rounds, "connect_all_s": connect_s}
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,100,1024", help="payload sizes in MB")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--client-kb", type=int, default=400, help="payload per client in the many-clients round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import tempfile

    tls_dir = create_credentials(tempfile.mkdtemp(), clients=["echo"])
    sizes = [int(s) for s in args.sizes.split(",")]
    reps = {1: 31, 100: 7, 1024: 3}  # medians; many cheap 1 MB repetitions steady them on a shared machine
    rows = bench_sizes(sizes, reps, tls_dir)
    many = bench_many(args.clients, args.rounds, args.client_kb) if args.clients else None
    print("\n| payload | raw socket | raw TLS socket | gRPC | gRPC+TLS | gRPC / raw | gRPC+TLS / raw TLS "
          "| gRPC+TLS throughput |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['size_mb']} MB | {r['raw_s'] * 1e3:.1f} ms | {r['raw_tls_s'] * 1e3:.1f} ms | "
              f"{r['grpc_s'] * 1e3:.1f} ms | {r['grpc_tls_s'] * 1e3:.1f} ms | {r['ratio']:.2f}x | "
              f"**{r['ratio_tls']:.2f}x** | {r['grpc_tls_mb_s']:.0f} MB/s |")
    print(f"\npeak RSS of the server process: {rows[-1]['peak_rss_mb']:.0f} MB" if rows else "")
    if many:
        print(f"\n{many['clients']} clients x {many['payload_kb']} KB, one round: median "
              f"{many['round_s_median']:.2f} s "
              f"(min {many['round_s_min']:.2f} s over {many['rounds']} rounds); all connected after "
              f"{many['connect_all_s']:.1f} s")


if __name__ == "__main__":
    main()
