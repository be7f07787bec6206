"""The tracker protocol and the two calls the run entry points make: open, then finish."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from fedloom.core.strategy import ServerState
from fedloom.engine.loop import RoundRecord, RunResult
from fedloom.tracking.options import TrackingOptions

__all__ = ["Tracker", "open_trackers", "finish_trackers", "GuardedTracker"]

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """A round observer that also hears how the run ended."""

    name: str

    def on_round_end(self, record: RoundRecord, state: ServerState) -> None: ...

    def finish(self, result: RunResult | None, model_path: Path | None) -> None:
        """Log the final model (if any) and close; ``result`` is ``None`` when the run failed."""
        ...


class GuardedTracker:
    """Wraps a tracker so that a tracking failure (a full disk, an unreachable tracking server) is logged
    and never ends the training run it observes."""

    def __init__(self, inner: Tracker) -> None:
        self.inner = inner
        self.name = inner.name
        self.errors = 0

    def on_round_end(self, record: RoundRecord, state: ServerState) -> None:
        try:
            self.inner.on_round_end(record, state)
        except Exception as exc:
            self.errors += 1
            log.warning("%s: could not log round %d: %s", self.name, record.round, exc)

    def finish(self, result: RunResult | None, model_path: Path | None) -> None:
        try:
            self.inner.finish(result, model_path)
        except Exception as exc:
            log.warning("%s: could not finish the run's log: %s", self.name, exc)


def open_trackers(options: TrackingOptions, config: Mapping[str, Any], *, run_name: str) -> list[GuardedTracker]:
    """The trackers ``options`` asks for, each already holding ``config`` (empty list: none asked).

    Args:
        options: The ``[tracking]`` section.
        config: The run's flat config (``RunConfig.to_dict()``), logged as parameters / text.
        run_name: Name of the run in the tracker (the run directory's name).
    """
    trackers: list[GuardedTracker] = []
    if options.use_mlflow:
        from fedloom.tracking.mlflow_tracker import MlflowTracker

        trackers.append(GuardedTracker(MlflowTracker(options.mlflow_uri, options.mlflow_experiment, config,
                                                     run_name=run_name)))
    if options.tensorboard:
        from fedloom.tracking.tensorboard_tracker import TensorBoardTracker

        trackers.append(GuardedTracker(TensorBoardTracker(Path(options.tensorboard) / run_name, config)))
    return trackers


def finish_trackers(trackers: Sequence[GuardedTracker], result: RunResult | None = None,
                    model_path: Path | None = None) -> None:
    """Tell every tracker the run ended (``result=None``: it failed)."""
    for tracker in trackers:
        tracker.finish(result, model_path)
