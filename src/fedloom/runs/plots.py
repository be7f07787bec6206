"""Plots of a run: accuracy, loss, privacy budget and bytes sent per round, plus an HTML report."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_plots", "write_html_report", "write_client_plots"]

PLOTS: dict[str, tuple[Sequence[str], str]] = {
    "accuracy": (("accuracy", "fed_accuracy"), "accuracy"),
    "loss": (("loss", "fed_loss", "train_loss"), "loss"),
    "privacy": (("epsilon",), "epsilon (privacy budget spent)"),
    "bytes": (("bytes_up", "bytes_down"), "bytes per round"),
}


ALL_PLOTS: tuple[str, ...] = (*PLOTS, "accuracy_vs_bytes", "accuracy_vs_virtual_time")
"""Every plot :func:`write_plots` can draw, by file stem."""

# Fixed margins instead of tight_layout(), which draws each figure once more just to measure it.
_MARGINS = {"left": 0.13, "right": 0.97, "bottom": 0.12, "top": 0.96}


def write_plots(history: list[dict[str, Any]], out_dir: str | Path,
                names: Sequence[str] = ALL_PLOTS) -> list[Path]:
    """Write one PNG per metric family present in ``history`` (only those in ``names``); returns the
    paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written: list[Path] = []
    for name, (keys, ylabel) in PLOTS.items():
        if name not in names:
            continue
        series = {k: [(h["round"], h[k]) for h in history if k in h] for k in keys}
        series = {k: v for k, v in series.items() if v}
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, points in series.items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, label=key)
        ax.set_xlabel("round")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.subplots_adjust(**_MARGINS)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    bytes_plot = _accuracy_vs_bytes(history, out_dir, plt) if "accuracy_vs_bytes" in names else None
    if bytes_plot is not None:
        written.append(bytes_plot)
    clock_plot = _accuracy_vs_virtual_time(history, out_dir, plt) if "accuracy_vs_virtual_time" in names else None
    if clock_plot is not None:
        written.append(clock_plot)
    return written


def _accuracy_vs_virtual_time(history: list[dict[str, Any]], out_dir: Path, plt: Any) -> Path | None:
    """Accuracy against ``virtual_time_s`` (runs on a heterogeneous fleet's virtual clock, docs/async.md)."""
    key = "accuracy" if any("accuracy" in h for h in history) else "fed_accuracy"
    points = [(h["virtual_time_s"], h[key]) for h in history if key in h and "virtual_time_s" in h]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    xs, ys = zip(*points, strict=True)
    ax.plot(xs, ys, marker="o", markersize=3)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(**_MARGINS)
    path = out_dir / "accuracy_vs_virtual_time.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _accuracy_vs_bytes(history: list[dict[str, Any]], out_dir: Path, plt: Any) -> Path | None:
    """Accuracy against cumulative megabytes: sent by clients, and sent in both directions.

    Uses central accuracy, or federated accuracy where the server cannot evaluate (HE runs).
    """
    key = "accuracy" if any("accuracy" in h for h in history) else "fed_accuracy"
    up = down = 0.0
    points: list[tuple[float, float, float]] = []
    for h in history:
        up += h.get("bytes_up", 0.0)
        down += h.get("bytes_down", 0.0)
        if key in h:
            points.append((up / 1e6, (up + down) / 1e6, h[key]))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ups, totals, ys = zip(*points, strict=True)
    ax.plot(ups, ys, marker="o", markersize=3, label="sent by clients")
    ax.plot(totals, ys, marker="o", markersize=3, label="sent and received")
    ax.set_xlabel("cumulative MB of payload")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.subplots_adjust(**_MARGINS)
    path = out_dir / "accuracy_vs_bytes.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_client_plots(per_round: dict[int, dict[str, dict[str, float]]], out_dir: str | Path) -> list[Path]:
    """``clients_accuracy.png``: a box plot per evaluated round of the clients' accuracy on their own held-out
    data (the personalized model's beside the global one's, when the run personalizes); ``clients_loss.png``
    when there is no accuracy. ``per_round``: :meth:`fedloom.runs.store.RunStore.read_clients`. Returns the
    paths written (none without per-client results, and then matplotlib is not imported)."""
    names = {k for rows in per_round.values() for row in rows.values() for k in row}
    metric = "accuracy" if "accuracy" in names else "loss" if "loss" in names else None
    if metric is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = sorted(per_round)
    series = [(metric, "global model")]
    if f"personal_{metric}" in names:
        series.append((f"personal_{metric}", "personalized"))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(rounds) * len(series)), 4))
    width = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        data = [[row[key] for row in per_round[r].values() if key in row] for r in rounds]
        positions = [j + (i - (len(series) - 1) / 2) * width for j in range(len(rounds))]
        box = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True, manage_ticks=False)
        for patch in box["boxes"]:
            patch.set_facecolor(f"C{i}")
            patch.set_alpha(0.5)
        box["boxes"][0].set_label(label)
    ax.set_xticks(range(len(rounds)))
    ax.set_xticklabels([str(r) for r in rounds])
    ax.set_xlabel("round")
    ax.set_ylabel(f"{metric} per client (own held-out data)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.subplots_adjust(**_MARGINS)
    path = Path(out_dir) / f"clients_{metric}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def write_html_report(summary: dict[str, Any], plots: list[Path], out_dir: str | Path) -> Path:
    """A single self-describing HTML page: final metrics, config, plots and the per-round table."""
    out_dir = Path(out_dir)
    history = summary.get("history", [])
    columns = sorted({k for h in history for k in h} - {"round"})
    rows = "".join(
        "<tr><td>{}</td>{}</tr>".format(
            h["round"], "".join(f"<td>{_fmt(h.get(c))}</td>" for c in columns)
        )
        for h in history
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    imgs = "".join(f'<img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}">' for p in plots)
    failed = ""
    if summary.get("status") == "failed":
        failed = (f'<p style="color:#b00"><b>This run failed after {len(history)} round(s):</b> '
                  f'{html.escape(str(summary.get("error", "")))}</p>')
    page = f"""<!doctype html><meta charset="utf-8"><title>fedloom run</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}img{{max-width:32%}}</style>
<h1>fedloom run</h1>{failed}
<h2>Final</h2><pre>{html.escape(json.dumps(summary.get("final", {}), indent=2))}</pre>
<h2>Plots</h2>{imgs}
{_clients_section(summary)}{_contributions_section(summary)}{_audit_section(out_dir)}<h2>Rounds</h2><table><tr><th>round</th>{head}</tr>{rows}</table>
<h2>Config</h2><pre>{html.escape(json.dumps(summary.get("config", {}), indent=2))}</pre>
"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path


def _clients_section(summary: dict[str, Any]) -> str:
    """How each client fares (the ``clients`` block): the spread of each metric over clients."""
    block = summary.get("clients")
    if not isinstance(block, dict) or not block.get("metrics"):
        return ""
    stats = ("mean", "median", "p10", "worst", "std")
    rows = "".join(f"<tr><td>{html.escape(name)}</td>{''.join(f'<td>{_fmt(d.get(s))}</td>' for s in stats)}</tr>"
                   for name, d in block["metrics"].items())
    head = "".join(f"<th>{s}</th>" for s in stats)
    return (f"<h2>Clients</h2><p>{block.get('count')} clients, federated evaluation of round {block.get('round')} on "
            f"each client's own held-out data (p10 and worst: the low tail for accuracy, the high tail for loss)</p>"
            f"<table><tr><th>metric</th>{head}</tr>{rows}</table>")


def _contributions_section(summary: dict[str, Any]) -> str:
    """Per-client contribution scores (``--contributions``): a table, best first, when the run has them."""
    scores = summary.get("contributions")
    if not isinstance(scores, dict) or not scores.get("shapley"):
        return ""
    loo, shapley = scores.get("leave_one_out", {}), scores["shapley"]
    order = scores.get("ranking") or sorted(shapley, key=lambda c: -shapley[c])
    rows = "".join(f"<tr><td>{html.escape(str(c))}</td><td>{_fmt(shapley.get(c))}</td><td>{_fmt(loo.get(c))}</td></tr>"
                   for c in order)
    note = (f"utility {html.escape(str(scores.get('metric', '')))}; {html.escape(str(scores.get('method', '')))}; "
            f"{scores.get('evaluations', '?')} evaluations, {_fmt(scores.get('seconds'))} s")
    return (f"<h2>Contributions</h2><p>{note}</p><table><tr><th>client</th><th>GTG-Shapley</th>"
            f"<th>leave-one-out</th></tr>{rows}</table>")


def _audit_section(out_dir: Path) -> str:
    """The privacy audit's pictures and numbers (``fedloom audit privacy``), when the run has them."""
    parts = [f'<img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}">'
             for p in sorted(out_dir.glob("audit_*.png"))]
    parts += [f"<pre>{html.escape(p.read_text())}</pre>" for p in sorted(out_dir.glob("audit_*.json"))]
    return f"<h2>Privacy audit</h2>{''.join(parts)}" if parts else ""


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))
