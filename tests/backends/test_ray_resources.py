"""--backend ray asking for resources the machine lacks fails at once (it used to wait forever)."""

from __future__ import annotations

import time

import pytest

from fedloom.backends.ray import check_resources
from fedloom.errors import ConfigError


def test_missing_gpus_and_cpus_are_named():
    with pytest.raises(ConfigError, match=r"--ray-gpus-per-client 0.5 but this machine's Ray has 0 GPUs: use 0"):
        check_resources({"CPU": 4.0}, cpus_per_client=1, gpus_per_client=0.5)
    with pytest.raises(ConfigError, match=r"--ray-cpus-per-client 8 but this machine's Ray has 2 CPUs"):
        check_resources({"CPU": 2.0}, cpus_per_client=8, gpus_per_client=0)
    check_resources({"CPU": 2.0, "GPU": 1.0}, cpus_per_client=1, gpus_per_client=0.25)  # fits: no error


@pytest.mark.slow
def test_a_ray_run_asking_for_a_gpu_on_a_machine_without_one_fails_fast():
    pytest.importorskip("ray")
    import torch

    from fedloom.app.config import RunConfig
    from fedloom.simulation import run_simulation

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="GPUs: use 0"):
        run_simulation(RunConfig(dataset="iris", clients=2, rounds=1, backend="ray", ray_gpus_per_client=1.0,
                                 ray_num_cpus=1, progress=False))
    assert time.monotonic() - start < 60
