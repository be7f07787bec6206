"""Every recipe in docs/contributing.md runs: each code block is executed as written, then one
small simulation uses the strategy, aggregator, server optimizer, codec, dataset, partitioner and
trainer it registered, and the backend serves a pool contract check (in a fresh process, so the
registrations do not leak into other tests)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "contributing.md"

DRIVER = r'''
import json, sys
blocks = json.loads(sys.stdin.read())
for code in blocks:
    exec(compile(code, "contributing.md", "exec"), {"__name__": "recipe"})

from fedloom import RunConfig, run_simulation
from fedloom.backends import BACKENDS, make_pool
from fedloom.core.trainer import TRAINERS
from fedloom.strategies import STRATEGIES

cfg = RunConfig(dataset="moons", partition="round_robin", model="mlp", hidden=16, clients=6, rounds=3,
                strategy="fedhalf", aggregator="geomedian", server_opt="signsgd", server_lr=0.01,
                compression="round1024", progress=False)
result = run_simulation(cfg)
STRATEGIES.get("fedhalf").__globals__["FedHalf"].local_trainer = "clipped"
clipped = run_simulation(cfg)
pool = make_pool("threads", lambda cid: None, 3)
print(json.dumps({
    "accuracy": result.final["accuracy"],
    "update_scale": clipped.final.get("train_update_scale"),
    "backends": BACKENDS.names(),
    "trainers": TRAINERS.names(),
    "pool_clients": list(pool.available()),
}))
'''


@pytest.mark.slow
def test_every_recipe_in_the_contributing_guide_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 9
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(blocks), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["accuracy"] > 0.5  # two moons, three rounds: the recipe parts learn together
    assert 0 < out["update_scale"] <= 1.0  # the clipped trainer ran and reported its scale
    assert "threads" in out["backends"] and "clipped" in out["trainers"]
    assert out["pool_clients"] == ["0", "1", "2"]
