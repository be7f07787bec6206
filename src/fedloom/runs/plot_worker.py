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
import select
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedloom.runs.plots import ALL_PLOTS, write_plots

__all__ = ["PlotWorker"]

log = logging.getLogger(__name__)


class PlotWorker:
    """A process that writes the plots of the run in ``out_dir`` once it is given the history.

    Args:
        out_dir: The run directory.
        names: The plots this worker draws (see :data:`fedloom.runs.plots.ALL_PLOTS`).
        timeout_s: How long :meth:`finish` waits before drawing here instead.
    """

    def __init__(self, out_dir: str | Path, *, names: Sequence[str] = ALL_PLOTS, timeout_s: float = 120.0) -> None:
        self.out_dir = Path(out_dir)
        self.names = tuple(names)
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._history: list[dict[str, Any]] = []
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "fedloom.runs.plot_worker", str(self.out_dir), *self.names],
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
        if proc is not None and proc.stdout is not None:
            try:
                # The answer is one line, printed once every PNG is written: take it without waiting
                # for the worker's interpreter to shut down (it exits by itself right after).
                ready, _, _ = select.select([proc.stdout], [], [], self.timeout_s)
                line = proc.stdout.readline() if ready else ""
                if line.strip():
                    return [Path(p) for p in json.loads(line)]
                proc.wait(timeout=5)
                err = proc.stderr.read() if proc.stderr is not None else ""
                log.warning("plot worker failed (exit %s): %s", proc.returncode, err.strip()[-500:])
            except (subprocess.TimeoutExpired, ValueError, OSError) as exc:
                log.warning("plot worker failed (%s); drawing the plots here", exc)
            if proc.poll() is None:
                proc.kill()
        return write_plots(history, self.out_dir, self.names)

    def cancel(self) -> None:
        """Stop the worker without plots (the run failed)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()


def _main(out_dir: str, names: Sequence[str]) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Warm up while the run trains: the first figure loads fonts and builds caches.
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0, 1], [0, 1], marker="o", label="warm-up")
    ax.legend()
    fig.savefig(io.BytesIO(), format="png", dpi=100)
    plt.close(fig)
    history = json.loads(sys.stdin.read())
    paths = write_plots(history, out_dir, names or ALL_PLOTS)
    print(json.dumps([str(p) for p in paths]), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2:])
