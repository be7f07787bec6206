"""Run directories: metrics store, summary, plots, HTML report, console output.

Names load on first use (the package itself imports nothing heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.runs.plots import write_html_report, write_plots
    from fedloom.runs.progress import ProgressBar, summary_table
    from fedloom.runs.store import RunStore, final_metrics, new_run_dir, read_history

_EXPORTS = {
    "write_html_report": "fedloom.runs.plots",
    "write_plots": "fedloom.runs.plots",
    "ProgressBar": "fedloom.runs.progress",
    "summary_table": "fedloom.runs.progress",
    "RunStore": "fedloom.runs.store",
    "final_metrics": "fedloom.runs.store",
    "new_run_dir": "fedloom.runs.store",
    "read_history": "fedloom.runs.store",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ProgressBar",
    "RunStore",
    "final_metrics",
    "new_run_dir",
    "read_history",
    "summary_table",
    "write_html_report",
    "write_plots",
]
