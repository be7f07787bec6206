"""One command, a whole deployment on this machine: certificates, one server, N client processes.

    python examples/deployment/run.py --clients 4 --rounds 5

Creates credentials with `fedloom certs`, writes a config, starts `fedloom server` and one
`fedloom client` per partition on 127.0.0.1 (TLS + mTLS + per-client tokens), waits for the run
to finish and prints the final accuracy. Everything is written under --out (default: a temp dir).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fedloom(*args: str, log: Path | None = None, cwd: Path) -> subprocess.Popen:
    out = open(log, "wb") if log else None  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "fedloom.cli", *args], cwd=cwd, stdout=out,
                            stderr=subprocess.STDOUT if out else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="", help="working directory (default: a new temp dir)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="fedloom-deploy-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = [str(i) for i in range(args.clients)]

    subprocess.run([sys.executable, "-m", "fedloom.cli", "certs", "--out", str(out / "creds"),
                    "--clients", ",".join(names)], check=True)
    port = free_port()
    config = (HERE / "deploy.toml").read_text()
    config = (config.replace("clients = 4 ", f"clients = {args.clients} ")
              .replace("rounds = 5", f"rounds = {args.rounds}")
              .replace('address = "127.0.0.1:8443"', f'address = "127.0.0.1:{port}"')
              .replace('allowed_clients = ["0", "1", "2", "3"]', f"allowed_clients = {names!r}".replace("'", '"'))
              .replace("min_clients_start = 4", f"min_clients_start = {args.clients}")
              .replace("min_clients_aggregate = 3", f"min_clients_aggregate = {max(1, args.clients - 1)}"))
    (out / "deploy.toml").write_text(config)

    print(f"working directory: {out}")
    server = fedloom("server", "--config", "deploy.toml", log=out / "server.log", cwd=out)
    clients = [fedloom("client", "--server", f"127.0.0.1:{port}", "--config", "deploy.toml", "--name", n,
                       log=out / f"client{n}.log", cwd=out) for n in names]
    start = time.monotonic()
    try:
        rc = server.wait()
        for c in clients:
            c.wait(60)
    except KeyboardInterrupt:
        rc = 130
    finally:
        for p in [server, *clients]:
            if p.poll() is None:
                p.kill()
    log = (out / "server.log").read_text(errors="replace")
    print("\n".join(line for line in log.splitlines() if "round" in line or "final" in line))
    print(f"server exited with {rc} after {time.monotonic() - start:.0f}s; logs in {out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
