"""The Ray backend on a real local cluster: `ray start --head` + a `ray start --address` worker node.

The federation joins by address (``ray_address``, i.e. ``--ray-address``), exactly as it would join a
multi-machine cluster, and must give the model the in-process backend gives. The nodes are this test's
own ``ray start --block`` processes, stopped in teardown (never ``ray stop``, which would end every Ray
on the machine).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest

from fedloom import RunConfig, run_simulation
from fedloom.backends.ray_cluster import LocalRayCluster

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

CFG = dict(dataset="iris", partition="dirichlet", clients=4, rounds=2, local_epochs=1, client_test_fraction=0.0,
           progress=False, seed=3)


def _alive_in_groups(pgids: set[int]) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines()
            if int(line.split()[1]) in pgids and not line.split()[2].startswith("Z")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    assert not ray.is_initialized()
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    nodes = LocalRayCluster(workers=1, cpus_per_node=1, object_store_bytes=80_000_000).start()
    groups = {p.pid for p in nodes.procs}
    nodes.join_from_here()
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    assert not _alive_in_groups(groups), "Ray processes of the test cluster outlived stop()"


def test_a_federation_on_a_local_ray_cluster_matches_in_process(cluster: LocalRayCluster) -> None:
    on_cluster = run_simulation(RunConfig(backend="ray", ray_address=cluster.address, **CFG))  # type: ignore[arg-type]
    # joined the cluster of two `ray start` nodes (head + worker), one CPU each: one actor per node
    assert ray.is_initialized()
    assert [n["Alive"] for n in ray.nodes()] == [True, True]
    assert ray.cluster_resources()["CPU"] == 2.0
    in_process = run_simulation(RunConfig(backend="inline", **CFG))  # type: ignore[arg-type]
    # the same model, up to float32 rounding: a Ray worker with one CPU runs torch on one thread
    np.testing.assert_allclose(on_cluster.parameters.flatten(), in_process.parameters.flatten(), rtol=0, atol=1e-6)
    assert len(on_cluster.history) == 2
    assert on_cluster.final["fit_failures"] == 0.0
