"""Draw a run's plots in a helper process that starts with the run, so importing matplotlib (about
half a second) overlaps with training instead of following it.

:class:`PlotWorker` spawns ``python -m fedloom.runs.plot_worker OUT_DIR``, which imports matplotlib
at once and then waits for the run's history on its standard input. :meth:`PlotWorker.finish`
sends it and waits for the PNG paths. Anything going wrong on that path (the worker cannot start,
crashes or hangs) falls back to drawing in this process, so plots are never lost; the history
crosses as JSON, never pickle.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from fedloom.runs.plots import write_plots

__all__ = ["PlotWorker"]

log = logging.getLogger(__name__)


class PlotWorker:
    """A process that writes the plots of the run in ``out_dir`` once it is given the history."""

    def __init__(self, out_dir: str | Path, *, timeout_s: float = 120.0) -> None:
        self.out_dir = Path(out_dir)
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._history: list[dict[str, Any]] = []
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "fedloom.runs.plot_worker", str(self.out_dir)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        except OSError as exc:
            log.info("plot worker did not start (%s); plots will be drawn in this process", exc)

    def send(self, history: list[dict[str, Any]]) -> None:
        """Hand the worker the history and let it draw, while this process does other work."""
        self._history = history
        if self._proc is not None and self._proc.stdin is not None:
            try:
                self._proc.stdin.write(json.dumps(history))
                self._proc.stdin.close()
            except OSError:  # the worker is gone: finish() draws here
                pass
            self._proc.stdin = None  # sent and closed: communicate() only collects the answer

    def finish(self, history: list[dict[str, Any]] | None = None) -> list[Path]:
        """The paths of the plots of ``history`` (or of what :meth:`send` handed over), drawn by the
        worker, or here if it failed."""
        if history is not None:
            self.send(history)
        history = self._history
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                out, err = proc.communicate(timeout=self.timeout_s)
                if proc.returncode == 0:
                    return [Path(p) for p in json.loads(out.strip().splitlines()[-1])]
                log.warning("plot worker failed (exit %s): %s", proc.returncode, err.strip()[-500:])
            except (subprocess.TimeoutExpired, ValueError, IndexError, OSError) as exc:
                proc.kill()
                log.warning("plot worker failed (%s); drawing the plots here", exc)
        return write_plots(history, self.out_dir)

    def cancel(self) -> None:
        """Stop the worker without plots (the run failed)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()


def _main(out_dir: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Warm up while the run trains: the first figure loads fonts and builds caches.
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0, 1], [0, 1], marker="o", label="warm-up")
    ax.legend()
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png", dpi=100)
    plt.close(fig)
    history = json.loads(sys.stdin.read())
    paths = write_plots(history, out_dir)
    print(json.dumps([str(p) for p in paths]))


if __name__ == "__main__":
    _main(sys.argv[1])
