"""examples/sklearn_logistic.py runs and reaches the issue's accuracy."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sklearn_logistic_example() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "sklearn_logistic.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert float(words[words.index("accuracy:") + 1]) >= 0.95
