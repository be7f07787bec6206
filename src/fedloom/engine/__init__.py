"""The transport-agnostic round loop and its checkpoints."""

from fedloom.engine.checkpoint import load_checkpoint, load_client_states, save_checkpoint
from fedloom.engine.codec import RoundCodec
from fedloom.engine.loop import FederatedLoop, RoundObserver, RoundRecord, RunResult, task_seed

__all__ = [
    "FederatedLoop",
    "RoundCodec",
    "RoundObserver",
    "RoundRecord",
    "RunResult",
    "load_checkpoint",
    "load_client_states",
    "save_checkpoint",
    "task_seed",
]
