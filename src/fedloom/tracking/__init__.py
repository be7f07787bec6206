"""Experiment tracking: round observers that log a run to MLflow or TensorBoard.

Both libraries are optional extras (``pip install 'fedloom[tracking]'``) and are imported only when
``--mlflow``/``--tensorboard`` is set, so ``fedloom --help`` and runs without them never load them.
:func:`open_trackers` returns the observers a :class:`~fedloom.tracking.options.TrackingOptions`
asks for; the caller adds them to the run's observers and calls :func:`finish_trackers` at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.tracking.base import Tracker, finish_trackers, open_trackers
    from fedloom.tracking.options import TrackingOptions

_EXPORTS = {
    "Tracker": "fedloom.tracking.base",
    "open_trackers": "fedloom.tracking.base",
    "finish_trackers": "fedloom.tracking.base",
    "TrackingOptions": "fedloom.tracking.options",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["Tracker", "TrackingOptions", "finish_trackers", "open_trackers"]
