"""Run a configured experiment end to end and record everything in its run directory.

:func:`finish_run` writes what a completed run leaves (summary, model, plots, report); a deployed
server (:mod:`fedloom.net.deploy`) calls it too, so both leave the same run directory.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedloom.app.build import run_simulation
from fedloom.app.config import RunConfig
from fedloom.app.privacy import privacy_summary
from fedloom.engine import RunResult
from fedloom.errors import ConfigError
from fedloom.runs.plot_worker import PlotWorker
from fedloom.runs.plots import write_client_plots, write_html_report
from fedloom.runs.progress import ProgressBar
from fedloom.runs.store import RunStore, new_run_dir
from fedloom.tracking import finish_trackers, open_trackers

__all__ = ["execute_run", "finish_run", "prepare_out_dir", "RUN_FILES"]

log = logging.getLogger(__name__)

RUN_FILES = ("summary.json", "metrics.sqlite", "checkpoint.safetensors", "model.safetensors", "config.toml")
"""Files that mark a directory as holding a run."""


def prepare_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to write a run over another one unless ``resume`` (continue it) or ``overwrite``
    (delete it first). A directory with other files is never deleted."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory")
    present = [f for f in RUN_FILES if (out / f).exists()]
    if not present or resume:
        return
    if not overwrite:
        raise ConfigError(f"{out} already holds a run ({', '.join(present)}): pass --resume to continue it, "
                          "--overwrite to replace it, or choose another --out")
    ours = set(RUN_FILES) | {"labels.json", "report.html", "history.json", "contributions.json",
                             "ledger.jsonl", "ledger.pub", "ledger.key"}  # the ledger's, if the run wrote one
    strangers = [p.name for p in out.iterdir() if p.name not in ours and p.suffix not in (".png", ".tmp")
                 and not p.name.startswith(("audit_", "ledger.jsonl."))]
    if strangers:
        raise ConfigError(f"--overwrite: {out} also holds files that are not a run's ({strangers[:5]}); "
                          "refusing to delete it: choose another --out")
    shutil.rmtree(out)


def finish_run(store: RunStore, result: RunResult, config: dict[str, Any], wall_s: float, *,
               extra: dict[str, Any] | None = None, plotter: PlotWorker | None = None,
               trackers: Sequence[Any] = ()) -> dict[str, Any]:
    """Write a completed run's summary.json, model, plots and report.html (and hand the model to the
    experiment trackers); returns the summary."""
    summary = store.write_summary(result, config, wall_s, extra=extra)
    plotter = plotter or PlotWorker(store.path)
    plotter.send(summary["history"])  # the worker draws while the model is written
    store.write_model(result.parameters)
    finish_trackers(list(trackers), result, store.path / "model.safetensors")
    plots = plotter.finish()
    plots += write_client_plots(store.read_clients(), store.path)  # per-client spread, when clients evaluated
    write_html_report(summary, plots, store.path)
    return summary


def execute_run(cfg: RunConfig) -> tuple[dict[str, Any], Path]:
    """Run ``cfg`` with a progress bar; write config, metrics, summary, model, plots, report.

    A run that fails before its first round leaves no directory (if it made it); one that fails
    later leaves a ``summary.json`` with ``"status": "failed"``, the error and the rounds it
    completed (``fedloom report`` says so; ``--resume`` continues it). Returns the summary dict and the run directory.
    """
    cfg.validate()
    labels = _labels(cfg)  # reads a user's file: its errors come before any directory is made
    if cfg.run.out:
        out = Path(cfg.run.out)
        prepare_out_dir(out, resume=cfg.run.resume, overwrite=cfg.run.overwrite)
        created = not out.exists()
    else:
        created = True
        out = new_run_dir("runs", f"{cfg.data.dataset}-{cfg.algorithm.strategy}")
    store = RunStore(out)
    store.write_config(cfg.to_nested())  # one TOML table per section; `fedloom run --config` reads it back
    if labels:
        store.write_labels(labels)
    start = time.perf_counter()
    initial = 0
    if cfg.run.resume and store.checkpoint_path.exists():
        from fedloom.engine import load_checkpoint

        initial = load_checkpoint(store.checkpoint_path)[0].round
    bar = ProgressBar(cfg.federation.rounds, initial=initial, enabled=cfg.run.progress)
    trackers = open_trackers(cfg.tracking, cfg.to_dict(), run_name=out.name)  # MLflow/TensorBoard if asked
    plotter = PlotWorker(out)  # imports matplotlib in another process while this one trains
    try:
        result = run_simulation(
            cfg, observers=[store, bar, *trackers], checkpoint_path=store.checkpoint_path, resume=cfg.run.resume
        )
    except BaseException as exc:
        plotter.cancel()
        finish_trackers(trackers)
        if created and not store.checkpoint_path.exists():  # nothing done: leave no half-written directory
            shutil.rmtree(out, ignore_errors=True)
        else:
            store.mark_failed(exc, cfg.to_dict(), time.perf_counter() - start)
        raise
    finally:
        bar.close()
    wall = time.perf_counter() - start
    from fedloom.ledger.contributions import contributions_summary

    extra = {**privacy_summary(cfg, result), **contributions_summary(out)}
    if labels:
        extra = {**extra, **labels}
    summary = finish_run(store, result, cfg.to_dict(), wall, extra=extra, plotter=plotter,
                         trackers=trackers)
    return summary, out


def _labels(cfg: RunConfig) -> dict[str, Any]:
    """The label (and group) encoding of a user's file (bundled datasets have numeric labels)."""
    if not cfg.data.dataset.endswith((".csv", ".npz")):
        return {}
    from fedloom.data.datasets import label_mapping, load_dataset

    data = cfg.data
    ds = load_dataset(data.dataset, test_fraction=data.test_fraction, seed=cfg.run.seed,
                      target_column=data.target_column, group_column=data.group_column or None,
                      labels=data.label_list)
    return label_mapping(ds)
