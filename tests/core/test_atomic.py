"""Crash-safe writes: temp file, fsync, rename, directory fsync."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fedloom.core.atomic import atomic_write_bytes, atomic_write_text


class _PowerCut(BaseException):
    pass


def test_a_crash_before_the_rename_leaves_the_old_file_and_no_temporary(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.safetensors"
    atomic_write_bytes(path, b"old")

    def crash(src, dst):  # noqa: ANN001, ANN202
        raise _PowerCut

    with monkeypatch.context() as m, pytest.raises(_PowerCut):
        m.setattr(os, "replace", crash)
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_the_file_and_then_its_directory_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "history.json"
    atomic_write_text(path, "[]")
    assert path.read_text() == "[]" and synced == ["file", "dir"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
