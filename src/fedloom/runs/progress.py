"""Console output of a run: a per-round progress bar and the final summary table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedloom.core.strategy import ServerState
from fedloom.engine import RoundRecord

if TYPE_CHECKING:  # rich and tqdm load when a bar or a table is shown
    from rich.console import Console

__all__ = ["ProgressBar", "summary_table"]

_SHOWN = ("accuracy", "loss", "fed_accuracy", "train_loss", "epsilon")


class ProgressBar:
    """A tqdm bar advanced once per round, showing the latest accuracy/loss (and epsilon)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="rounds", unit="round", dynamic_ncols=True)

    def on_round_end(self, record: RoundRecord, state: ServerState) -> None:
        if self.bar is None:
            return
        shown = {k: f"{record.metrics[k]:.4f}" for k in _SHOWN if k in record.metrics}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary_table(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print the final summary of a run as a table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="fedloom run summary", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    cfg = summary.get("config", {})
    for key in ("dataset", "model", "strategy", "partition", "clients", "rounds"):
        if key in cfg:
            table.add_row(key, str(cfg[key]))
    table.add_row("rounds run", str(len(summary.get("history", []))))
    for key, value in summary.get("final", {}).items():
        table.add_row(f"final {key}", f"{value:.4f}")
    if "privacy" in summary:
        for key, value in summary["privacy"].items():
            table.add_row(f"privacy {key}", f"{value:.4g}" if isinstance(value, float) else str(value))
    spread = summary.get("clients", {}).get("metrics", {})  # how each client fares (federated evaluation)
    for key in ("accuracy", "personal_accuracy"):
        if key in spread:
            d = spread[key]
            table.add_row(f"clients {key} mean / p10 / worst", f"{d['mean']:.4f} / {d['p10']:.4f} / {d['worst']:.4f}")
    b = summary.get("bytes", {})
    if b:
        table.add_row("MB up / down", f"{b.get('up', 0) / 1e6:.2f} / {b.get('down', 0) / 1e6:.2f}")
    table.add_row("wall time (s)", f"{summary.get('wall_s', 0.0):.2f}")
    console.print(table)
