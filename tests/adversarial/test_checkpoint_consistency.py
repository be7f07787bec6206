"""Issue 10, finding 10: a crash while a round is being saved cannot leave the server checkpoint and
the simulated clients' state a round apart.

The test plays a power cut: ``os.replace`` (the commit point of every atomic file write) raises at
each of the file renames that persist round 3, one crash point per run. Resuming must then give
exactly the parameters of an uninterrupted run. Before the fix the server checkpoint and the
client-state file (SCAFFOLD's c_i) were two renames: a crash between them resumed round 4 with the
clients' c_i of round 2, and the run silently diverged.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fedloom import RunConfig, run_simulation

_REAL_REPLACE = os.replace


class _PowerCut(BaseException):
    """The process dies here (a BaseException, so that nothing handles it as an error)."""


CFG = RunConfig(dataset="iris", model="linear", clients=4, fraction=1.0, rounds=4, strategy="scaffold",
                partition="iid", local_epochs=1, batch_size=8, progress=False, seed=3)


def _replaces(monkeypatch: pytest.MonkeyPatch, crash_at: int | None = None) -> list[int]:
    """Count ``os.replace`` calls; raise :class:`_PowerCut` at call number ``crash_at`` (1-based)."""
    calls: list[int] = []

    def replace(src, dst, *args, **kwargs):  # noqa: ANN001, ANN202 - os.replace's signature
        calls.append(1)
        if crash_at is not None and len(calls) == crash_at:
            raise _PowerCut(f"power cut at rename {crash_at} ({dst})")
        return _REAL_REPLACE(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_a_crash_at_any_rename_of_a_round_resumes_consistently(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = run_simulation(CFG)
    with monkeypatch.context() as m:
        two = _replaces(m)
        run_simulation(CFG.replace(rounds=2), checkpoint_path=tmp_path / "count2" / "ckpt.safetensors")
        three = _replaces(m)
        run_simulation(CFG.replace(rounds=3), checkpoint_path=tmp_path / "count3" / "ckpt.safetensors")
    round3 = range(len(two) + 1, len(three) + 1)  # the renames that persist round 3
    assert len(round3) >= 1
    for crash_at in round3:
        ckpt = tmp_path / f"crash{crash_at}" / "ckpt.safetensors"
        with monkeypatch.context() as m, pytest.raises(_PowerCut):
            _replaces(m, crash_at)
            run_simulation(CFG, checkpoint_path=ckpt)
        resumed = run_simulation(CFG, checkpoint_path=ckpt, resume=True)
        for name in expected.parameters:
            np.testing.assert_array_equal(resumed.parameters[name], expected.parameters[name],
                                          err_msg=f"crash at rename {crash_at} of rounds {list(round3)}")
