"""One shared deploy.toml for named sites: partitions by name, a site's own data, the model check."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns, FitRes
from fedloom.engine import task_seed
from fedloom.errors import ConfigError
from fedloom.net import load_deployment
from fedloom.net.deploy import ModelCheck, SimulationSeeds, build_client, partition_of

SHARED = """
dataset = "iris"
clients = 3
partition = "iid"
hidden = 8
labels = ["0", "1", "2"]

[client]
credentials = "creds/clients/{name}"

[client.partitions]
hospital-a = 0
hospital-b = 2
"""


@pytest.fixture
def shared(tmp_path):
    path = tmp_path / "deploy.toml"
    path.write_text(SHARED)
    return load_deployment(path)


def test_names_map_to_partitions_by_the_shared_table(shared):
    cfg, _, ccfg = shared
    assert partition_of(cfg, ccfg, "hospital-a") == 0 and partition_of(cfg, ccfg, "hospital-b") == 2
    with pytest.raises(ConfigError, match=r"client 'hospital-z' has no data: add it to the shared config's "
                                          r"\[client.partitions\] table .* or give this site its own data with "
                                          r"--data FILE.csv --target-column COLUMN"):
        partition_of(cfg, ccfg, "hospital-z")
    ccfg.partitions = {}
    assert partition_of(cfg, ccfg, "1") == 1  # without a table: names 0..N-1
    with pytest.raises(ConfigError, match="partition 7, but the config has clients = 3"):
        partition_of(cfg, ccfg, "7")


def test_two_names_on_one_partition_are_refused(tmp_path):
    path = tmp_path / "deploy.toml"
    path.write_text(SHARED.replace("hospital-b = 2", "hospital-b = 0"))
    with pytest.raises(ConfigError, match="'hospital-a' and 'hospital-b' both hold partition 0"):
        load_deployment(path)


def test_a_named_demo_client_trains_with_its_partitions_simulation_seeds(shared):
    cfg, _, ccfg = shared
    client = build_client(cfg, ccfg, "hospital-b")
    assert isinstance(client, SimulationSeeds) and client.cid == "2"
    seen = {}

    class Probe:
        def fit_task(self, ins):
            seen.update(ins.config)
            return FitRes(ins.parameters, 1)

    client.inner = Probe()  # type: ignore[assignment]
    params = Parameters({"w": np.zeros(1)})
    client.fit_task(FitIns(params, {"round": 3, "seed": task_seed(cfg.run.seed, 3, "hospital-b")}))
    assert seen["seed"] == task_seed(cfg.run.seed, 3, "2")  # the seed simulated client "2" gets
    client.fit_task(FitIns(params, {"round": 3, "seed": 12345}))
    assert seen["seed"] == 12345  # a seed the server chose otherwise stays


def test_a_site_whose_data_does_not_fit_the_model_stops_with_what_differs(shared, tmp_path):
    cfg, _, ccfg = shared
    site = tmp_path / "site.csv"
    site.write_text("a,b,c,target\n" + "".join(f"{i},{i % 3},{i % 5},{i % 3}\n" for i in range(30)))
    ccfg.data = str(site)
    client = build_client(cfg, ccfg, "hospital-a")  # 3 features; the shared iris model takes 4
    assert isinstance(client, ModelCheck)
    stopped = []
    client.on_error = lambda: stopped.append(True)
    server_model = build_client(cfg, type(ccfg)(partitions={"hospital-a": 0}), "hospital-a").get_parameters({})
    with pytest.raises(ConfigError, match=r"this site's data does not fit the server's model: this site's data "
                                          r"\(.*site.csv\) has 3 feature columns and the 3 labels \['0', '1', '2'\]"
                                          r", and the arrays differ \(0.weight: server \(8, 4\), here \(8, 3\)"):
        client.fit_task(FitIns(server_model, {"round": 1, "seed": 1}))
    assert stopped == [True] and client.error is not None
    fits = site.with_name("fits.csv")
    fits.write_text("a,b,c,d,target\n" + "".join(f"{i},{i % 3},{i % 5},{i % 7},{i % 3}\n" for i in range(30)))
    ccfg.data = str(fits)
    res = build_client(cfg, ccfg, "hospital-a").fit_task(FitIns(server_model, {"round": 1, "seed": 1}))
    assert res.num_examples == 24  # 30 rows, client_test_fraction 0.2 held out for federated evaluation
