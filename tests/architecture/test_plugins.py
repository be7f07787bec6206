"""Extending fedloom from outside the package: a toy codec and a toy strategy, each one file that
registers itself, found through Python entry points (or ``--plugins``) and run from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedloom.core.registry import Registry
from fedloom.errors import ConfigError

TOY_CODEC = '''
"""A toy codec: the update in float32, every entry rounded to 1/1024 (one file, registered here)."""
import numpy as np

from fedloom.compression.base import check_payload_names
from fedloom.compression.registry import CODECS
from fedloom.core.parameters import Parameters
from fedloom.errors import ValidationError


class RoundedCodec:
    name = "toy_round"

    def encode(self, update, *, rng):
        return Parameters({k: (np.round(v * 1024) / 1024).astype(np.float32) for k, v in update.items()})

    def decode(self, payload, spec):
        check_payload_names(payload, spec, self.name)
        out = {}
        for name, want in spec.items():
            arr = payload[name]
            if arr.dtype != np.float32 or tuple(arr.shape) != want.shape or not np.isfinite(arr).all():
                raise ValidationError(f"{name!r}: not a finite float32 array of shape {want.shape}")
            out[name] = arr.astype(np.float64)
        return Parameters(out)


@CODECS.register("toy_round", help="Toy: updates rounded to 1/1024.")
def make(**_):
    return RoundedCodec()
'''

TOY_STRATEGY = '''
"""A toy strategy: FedAvg taking half a step towards the clients' mean (one file)."""
from fedloom.strategies import FedAvg


class HalfStep(FedAvg):
    def aggregate_fit(self, state, rnd, results, failures):
        before = state.parameters.flatten()
        metrics = super().aggregate_fit(state, rnd, results, failures)
        after = state.parameters.flatten()
        state.parameters = state.parameters.unflatten(before + 0.5 * (after - before))
        metrics["toy_half_step"] = 1
        return metrics


def build(options, common):
    """Toy: FedAvg with half steps."""
    return HalfStep(**common)
'''


def _write_plugin(root: Path) -> None:
    (root / "toy_codec_plugin.py").write_text(textwrap.dedent(TOY_CODEC))
    (root / "toy_strategy_plugin.py").write_text(textwrap.dedent(TOY_STRATEGY))
    info = root / "toy_fedloom_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-fedloom-plugins\nVersion: 0.1\n")
    # a module entry point (imported: it registers itself) and an object entry point (registered by name)
    (info / "entry_points.txt").write_text(
        "[fedloom.codecs]\ntoy = toy_codec_plugin\n\n[fedloom.strategies]\ntoy_half = toy_strategy_plugin:build\n"
    )


def _fedloom(args: list[str], root: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "fedloom", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_toy_codec_and_strategy_from_entry_points_run_from_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    _write_plugin(root)
    out = tmp_path / "run"
    args = ["run", "--dataset", "iris", "--model", "linear", "--clients", "3", "--rounds", "2", "--partition", "iid",
            "--no-progress", "--out", str(out)]
    proc = _fedloom([*args, "--strategy", "toy_half", "--compression", "toy_round"], root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["strategy"] == "toy_half" and summary["config"]["compression"] == "toy_round"
    last = summary["history"][-1]
    assert last["train_toy_half_step"] == 1.0  # the toy strategy aggregated
    assert last["bytes_up_per_client"] == 4 * 15  # float32 payload of the toy codec: iris linear has 15 weights
    help_text = _fedloom(["run", "--help"], root, tmp_path).stdout
    assert "toy_half" in help_text and "toy_round" in help_text

    # without the plugin on the path the names are unknown, and the error lists the choices
    bare = subprocess.run([sys.executable, "-m", "fedloom", *args, "--strategy", "toy_half"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert bare.returncode != 0 and "unknown strategy 'toy_half'; choose one of: fedavg" in bare.stderr


@pytest.mark.slow
def test_plugins_flag_imports_a_module_that_registers_itself(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "toy_codec_plugin.py").write_text(textwrap.dedent(TOY_CODEC))  # no entry point this time
    out = tmp_path / "run"
    proc = _fedloom(["run", "--dataset", "iris", "--model", "linear", "--clients", "3", "--rounds", "1",
                     "--compression", "toy_round", "--plugins", "toy_codec_plugin", "--no-progress", "--out",
                     str(out)], root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["history"][-1]["bytes_up_per_client"] == 60


def test_registry_errors_name_every_choice_and_broken_plugins() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    reg.register("b", 2, help="The second.")
    assert reg.get("b") == 2 and reg.entry("b").help == "The second." and list(reg) == ["a", "b"]
    with pytest.raises(ConfigError, match="unknown widget 'c'; choose one of: a, b"):
        reg.get("c")
    with pytest.raises(ConfigError, match="cannot import plugin 'no_such_module_xyz'"):
        from fedloom.core.registry import load_plugins

        load_plugins(["no_such_module_xyz"])


def test_registry_discovers_entry_points_and_reports_a_broken_one(tmp_path: Path, monkeypatch) -> None:
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[fedloom.gadgets]\nok = json:dumps\n\n[fedloom.sprockets]\nbad = no_such_mod_q\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gadgets: Registry[object] = Registry("gadget")
    assert gadgets.get("ok") is json.dumps
    with pytest.raises(ConfigError, match="plugin 'no_such_mod_q'.*failed to load"):
        Registry("sprocket").names()


def test_lazy_entries_are_listed_without_importing_and_loaded_on_first_use(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "heavy_toy_mod.py").write_text("import json\nLOADED = True\ndef factory():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[object] = Registry("thing")
    reg.register_lazy("heavy", "heavy_toy_mod:factory", help="A heavy one.")
    assert reg.names() == ["heavy"] and "heavy_toy_mod" not in sys.modules
    assert reg.entry("heavy").help == "A heavy one."
    assert reg.get("heavy")() == 42 and "heavy_toy_mod" in sys.modules
    with pytest.raises(ConfigError, match="must be 'module:attribute'"):
        reg.register_lazy("bad", "no_colon")


def test_listing_backends_does_not_import_torch() -> None:
    code = "import sys\nfrom fedloom.backends import BACKENDS\nprint(BACKENDS.names(), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == "['inline', 'vectorized', 'ray'] False"


def test_a_new_file_in_the_registry_package_registers_itself(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "toy_feature_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from fedloom.core.registry import Registry\n"
                                     "GIZMOS = Registry('gizmo', package='toy_feature_pkg')\n")
    (pkg / "alpha.py").write_text("from toy_feature_pkg import GIZMOS\nGIZMOS.register('alpha', 1)\n")
    (pkg / "_private.py").write_text("raise RuntimeError('private modules are not discovered')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_feature_pkg  # type: ignore[import-not-found]

    assert toy_feature_pkg.GIZMOS.names() == ["alpha"]
    (pkg / "beta.py").write_text("from toy_feature_pkg import GIZMOS\nGIZMOS.register('beta', 2)\n")
    fresh = Registry("gizmo", package="toy_feature_pkg")  # a fresh registry discovers the new file
    toy_feature_pkg.GIZMOS = fresh
    assert fresh.get("beta") == 2  # (alpha was imported already: it registered into the first registry)
