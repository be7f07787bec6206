"""Reproduce papers' protocols: ``python -m benchmarks.papers {fedprox,fedsgd,scaffold,report} [options]``.

* ``fedprox``: FedProx on Synthetic with Algorithm 2's sampling and averaging (:mod:`benchmarks.papers.fedprox`);
* ``fedsgd``: FedAvg against FedSGD on the MNIST subset, rounds to a target (:mod:`benchmarks.papers.fedsgd`);
* ``scaffold``: SCAFFOLD against FedAvg and FedProx under client drift (:mod:`benchmarks.papers.scaffold`);
* ``report``: rebuild the tables and plots from the saved JSON results.

Each writes ``benchmarks/papers/<name>.json`` (merged with what is there, so runs split over processes
combine) and its table ``<name>_table.md``; ``RESULTS.md`` quotes them beside the papers' numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _merge(paths: list[Path], out: Path) -> dict:
    merged: dict = {"runs": {}}
    for p in paths:
        if p.exists():
            data = json.loads(p.read_text())
            merged["runs"].update(data["runs"])
            merged["protocol"] = data.get("protocol") or merged.get("protocol")  # the newest file's
    out.write_text(json.dumps(merged))
    return merged


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["fedprox", "fedsgd", "scaffold", "report"])
    ap.add_argument("--rounds", type=int, default=0, help="rounds (0 = the benchmark's default)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default benchmarks/papers/<what>.json)")
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="merge these result files (one per process) first: a file whose name starts with fedsgd or "
                         "scaffold into that benchmark's JSON, any other into fedprox.json")
    ap.add_argument("--models", nargs="+", default=["2nn", "cnn"], help="fedsgd: the models to run (2nn, cnn, "
                    "paper-cnn)")
    ap.add_argument("--settings", nargs="+", default=None, help="fedsgd: only these settings, as method,E,B")
    ap.add_argument("--partitions", nargs="+", default=["iid", "shards"], help="fedsgd: the partitions to run")
    ap.add_argument("--setups", nargs="+", default=None, help="scaffold: the setups to run (default all)")
    ap.add_argument("--lrs", type=float, nargs="+", default=None,
                    help="scaffold: sweep only these client learning rates, in this order (default all)")
    ap.add_argument("--methods", nargs="+", default=None, help="scaffold: only these methods (default all)")
    ap.add_argument("--no-report", action="store_true", help="do not rebuild the tables and plots afterwards")
    args = ap.parse_args(argv)
    if args.what == "fedprox":
        from benchmarks.papers import fedprox

        fedprox.run(args.out or HERE / "fedprox.json", rounds=args.rounds or 200, seeds=args.seeds)
    elif args.what == "fedsgd":
        from benchmarks.papers import fedsgd

        fedsgd.run(args.out or HERE / "fedsgd.json", rounds=args.rounds or fedsgd.ROUNDS, seeds=args.seeds,
                   models=args.models, partitions=args.partitions, settings=args.settings)
    elif args.what == "scaffold":
        from benchmarks.papers import scaffold

        scaffold.run(args.out or HERE / "scaffold.json", rounds=args.rounds or scaffold.ROUNDS, seeds=args.seeds,
                     setups=args.setups, lrs=args.lrs,
                     methods=args.methods)
    if not args.no_report:
        report(args.merge)


def report(merge: list[Path]) -> None:
    """Write each benchmark's table (and plot) from its JSON results."""
    for name in ("fedsgd", "scaffold", "fedprox"):
        mine = [p for p in merge if p.name.startswith(name) or (name == "fedprox" and not p.name.startswith(
            ("fedsgd", "scaffold")))]
        if mine:
            _merge([HERE / f"{name}.json", *mine] if name != "fedprox" else mine, HERE / f"{name}.json")
    for name in ("fedprox", "fedsgd", "scaffold"):
        path = HERE / f"{name}.json"
        if not path.exists():
            continue
        results = json.loads(path.read_text())
        module = __import__(f"benchmarks.papers.{name}", fromlist=["table"])
        if name == "fedsgd":  # runs cut short: their curves so far
            results["runs"] = {**module.partial_runs(), **module.normalize(results)["runs"]}
        text = module.table(results)
        (HERE / f"{name}_table.md").write_text(text)
        module.plot(results, HERE / f"{name}.png")
        print(f"## {name}\n{text}")


if __name__ == "__main__":
    main()
