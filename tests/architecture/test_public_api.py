"""The flat public API: every exported name resolves, lazily (``import fedloom`` stays cheap)."""

from __future__ import annotations

import subprocess
import sys

import fedloom

PROTOCOLS_AND_ENTRY_POINTS = ["Client", "Strategy", "Aggregator", "ServerOpt", "Codec", "ClientPool", "RoundObserver",
                              "LocalTrainer", "Registry", "simulate", "load_dataset", "partition", "RunConfig",
                              "run_simulation"]


def test_every_exported_name_resolves() -> None:
    for name in fedloom.__all__:
        assert getattr(fedloom, name) is not None, name
    assert set(PROTOCOLS_AND_ENTRY_POINTS) <= set(fedloom.__all__)


def test_import_fedloom_loads_no_feature() -> None:
    code = ("import sys, fedloom\n"
            "heavy = [m for m in ('torch', 'numpy', 'grpc', 'dp_accounting', 'opacus', 'matplotlib', 'sklearn')"
            " if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"
