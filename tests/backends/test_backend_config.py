"""Backend names and options are validated with clear messages."""

from __future__ import annotations

import pytest

from fedloom import ConfigError, RunConfig
from fedloom.backends import BACKENDS


def test_every_backend_name_is_accepted() -> None:
    assert BACKENDS.names() == ["inline", "vectorized", "ray"]
    for name in BACKENDS:
        RunConfig(backend=name).validate()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("backend", "gpu", "unknown backend 'gpu'"),
        ("ray_cpus_per_client", 0.0, "ray_cpus_per_client must be > 0"),
        ("ray_gpus_per_client", -1.0, "ray_gpus_per_client must be >= 0"),
        ("ray_num_cpus", -2, "ray_num_cpus must be >= 0"),
    ],
)
def test_bad_backend_options_are_config_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{field: value}).validate()  # type: ignore[arg-type]
