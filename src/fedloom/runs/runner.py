"""Run a configured experiment end to end and record everything in its run directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fedloom.app.build import run_simulation
from fedloom.app.config import RunConfig
from fedloom.app.privacy import privacy_summary
from fedloom.runs.plot_worker import PlotWorker
from fedloom.runs.plots import write_html_report
from fedloom.runs.progress import ProgressBar
from fedloom.runs.store import RunStore, new_run_dir
from fedloom.tracking import finish_trackers, open_trackers

__all__ = ["execute_run"]

log = logging.getLogger(__name__)


def execute_run(cfg: RunConfig) -> tuple[dict[str, Any], Path]:
    """Run ``cfg`` with a progress bar; write config, metrics, summary, model, plots, report.

    Returns the summary dict and the run directory.
    """
    cfg.validate()
    out = Path(cfg.run.out) if cfg.run.out else new_run_dir("runs", f"{cfg.data.dataset}-{cfg.algorithm.strategy}")
    store = RunStore(out)
    store.write_config(cfg.to_nested())  # one TOML table per section; `fedloom run --config` reads it back
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
    except BaseException:
        plotter.cancel()
        finish_trackers(trackers)
        raise
    finally:
        bar.close()
    wall = time.perf_counter() - start
    from fedloom.ledger.contributions import contributions_summary

    summary = store.write_summary(result, cfg.to_dict(), wall,
                                  extra={**privacy_summary(cfg, result), **contributions_summary(out)})
    plotter.send(summary["history"])  # the worker draws while the model is written
    store.write_model(result.parameters)
    finish_trackers(trackers, result, out / "model.safetensors")
    plots = plotter.finish()
    write_html_report(summary, plots, out)
    return summary, out
