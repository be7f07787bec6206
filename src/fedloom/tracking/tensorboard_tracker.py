"""Write a run as TensorBoard event files: the config as text, every round's metrics as scalars.

Uses TensorBoard's own event writer (``tensorboard`` package, no TensorFlow needed); read back with
``tensorboard --logdir DIR`` or :class:`tensorboard.backend.event_processing.event_accumulator.EventAccumulator`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedloom.core.strategy import ServerState
from fedloom.engine.loop import RoundRecord, RunResult

__all__ = ["TensorBoardTracker", "CONFIG_TAG"]

CONFIG_TAG = "config"


class TensorBoardTracker:
    """Event files under ``logdir``: tag ``config`` (text, step 0), one scalar tag per metric (step = round).

    Args:
        logdir: Directory to write into (created).
        config: The run's flat config.
    """

    name = "tensorboard"

    def __init__(self, logdir: str | Path, config: Mapping[str, Any]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboard.compat.proto.types_pb2 import DT_STRING
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._Event, self._Summary = Event, Summary
        self.writer = EventFileWriter(str(self.logdir))
        text = "\n".join(f"    {k} = {json.dumps(v)}" for k, v in sorted(config.items()))  # markdown code block
        tensor = TensorProto(dtype=DT_STRING, string_val=[text.encode()], tensor_shape=TensorShapeProto())
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        value = Summary.Value(tag=CONFIG_TAG, tensor=tensor, metadata=meta)
        self.writer.add_event(Event(wall_time=time.time(), step=0, summary=Summary(value=[value])))
        self.writer.flush()

    def on_round_end(self, record: RoundRecord, state: ServerState) -> None:
        """One scalar per metric of the round (accuracy, loss, epsilon, bytes_*, ...) at step = round."""
        values = [self._Summary.Value(tag=k, simple_value=float(v)) for k, v in record.metrics.items()
                  if math.isfinite(v)]
        self.writer.add_event(self._Event(wall_time=time.time(), step=record.round,
                                          summary=self._Summary(value=values)))
        self.writer.flush()

    def finish(self, result: RunResult | None, model_path: Path | None) -> None:
        """Flush and close the event file (TensorBoard keeps no model)."""
        self.writer.close()
