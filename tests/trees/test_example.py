"""examples/xgboost_trees.py runs and both strategies reach AUC 0.98 on breast_cancer."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_xgboost_trees_example() -> None:
    pytest.importorskip("xgboost")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "xgboost_trees.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    aucs = [float(line.rsplit(" ", 1)[-1]) for line in proc.stdout.splitlines() if "auc:" in line]
    assert len(aucs) == 2 and min(aucs) >= 0.98
