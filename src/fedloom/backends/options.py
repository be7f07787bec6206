"""The execution section of a run: which backend runs the clients, and its resources."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.backends.registry import BACKENDS
from fedloom.core.options import need, option

__all__ = ["ExecutionOptions"]


@dataclass
class ExecutionOptions:
    """``[execution]``: the backend (``--backend``) and Ray's resources."""

    backend: str = option("inline", "Where clients run.", choices=lambda: BACKENDS)
    ray_address: str = option("", "Ray cluster to join (e.g. auto or ray://head:10001); empty starts a local Ray.")
    ray_num_cpus: int = option(0, "CPUs of the local Ray started by --backend ray (0 = all cores).")
    ray_cpus_per_client: float = option(1.0, "CPUs reserved by each Ray worker running clients.")
    ray_gpus_per_client: float = option(0.0, "GPUs (fractions allowed) reserved by each Ray worker.")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        BACKENDS.get(self.backend)
        need(self.ray_num_cpus >= 0, f"ray_num_cpus must be >= 0, got {self.ray_num_cpus}")
        need(self.ray_cpus_per_client > 0, f"ray_cpus_per_client must be > 0, got {self.ray_cpus_per_client}")
        need(self.ray_gpus_per_client >= 0, f"ray_gpus_per_client must be >= 0, got {self.ray_gpus_per_client}")
