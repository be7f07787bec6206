"""Assemble BENCHMARKS.md from each benchmark's RESULTS.md: ``python -m benchmarks.assemble``.

Each benchmark writes its own ``benchmarks/<name>/RESULTS.md`` (tables measured in one run, ratios
against a baseline measured in the same run). This script copies them under one roof, demoting
headings one level and pointing images at their folders, after a hand-written overview.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["startup", "simulation", "transport", "privacy", "communication", "robustness", "adversarial",
            "fedprox_synthetic", "papers", "audit", "ledger", "async", "tabular", "personalization",
            "ray_cluster", "fleet"]
OVERVIEW = ROOT / "benchmarks" / "OVERVIEW.md"


def section(name: str) -> str:
    text = (ROOT / "benchmarks" / name / "RESULTS.md").read_text()
    text = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.M)
    text = re.sub(r"\]\(([^)/]+\.png)\)", rf"](benchmarks/{name}/\1)", text)
    return f"{text.rstrip()}\n\n*Source: `benchmarks/{name}/` — rerun with `python -m benchmarks.{name}`.*\n"


def main() -> None:
    parts = [OVERVIEW.read_text().rstrip() + "\n"] + [section(n) for n in SECTIONS]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
