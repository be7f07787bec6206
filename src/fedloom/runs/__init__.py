"""Run directories: metrics store, summary, plots, HTML report, console output."""

from fedloom.runs.plots import write_html_report, write_plots
from fedloom.runs.progress import ProgressBar, summary_table
from fedloom.runs.store import RunStore, final_metrics, new_run_dir, read_history

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
