"""Examples are part of the product: each one runs, and the seed scenario converges."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_parties_converge_to_pooled_least_squares():
    ex = load("two_party_linear_regression")
    rng = np.random.default_rng(1)
    parties = [ex.make_party(150, -0.5, rng), ex.make_party(50, 1.0, rng)]
    pooled = ex.pooled_least_squares(parties)
    federated = ex.federated_fit(parties)
    assert np.abs(federated - pooled).max() < 1e-2
    # and the federated fit is not just the truth by luck: it matches pooled OLS, not a single party's fit
    single = ex.pooled_least_squares(parties[1:])
    assert np.abs(federated - pooled).max() < np.abs(single - pooled).max()


def test_quickstart_runs():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    accuracy = float(proc.stdout.strip().rsplit(" ", 1)[-1])
    assert accuracy > 0.85


def test_readme_python_example_runs():
    import re

    readme = (EXAMPLES.parent / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "'fit_clients': 5.0" in proc.stdout  # fraction_fit=0.5 of 10 clients
    assert re.search(r"final accuracy: 0\.[5-9]\d\d", proc.stdout), proc.stdout  # central evaluation
    assert "rounds: 100%" in proc.stderr and "20/20" in proc.stderr  # simulate(..., progress=True)


@pytest.mark.slow
def test_privacy_and_deployment_examples_run(tmp_path):
    """Smoke-run the longer examples side by side (each is its own process)."""
    runs = {
        "secagg.py": ([], "SecAgg+ FedAvg accuracy:"),
        "central_dp.py": ([], "epsilon"),
        "dp_sgd_opacus.py": ([], "accuracy"),
        "deployment/run.py": (["--clients", "2", "--rounds", "1", "--out", str(tmp_path / "deploy")], "accuracy"),
    }
    procs = {
        name: subprocess.Popen([sys.executable, str(EXAMPLES / name), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        for name, (args, _) in runs.items()
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}:\n{out[-3000:]}"
        assert runs[name][1] in out, f"{name}:\n{out[-3000:]}"
