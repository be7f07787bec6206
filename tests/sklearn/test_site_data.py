"""A deployed site training on its own CSV (`fedloom client --data`): the deployment's label set fixes the
estimator's width even when the site holds one class, and its update fits the server's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedloom.app.build import build_simulation
from fedloom.app.config import RunConfig
from fedloom.core.types import FitIns
from fedloom.net.config import ClientConfig
from fedloom.net.deploy import build_client


def _site_csv(path: Path, labels: list[str]) -> Path:
    rng = np.random.default_rng(0)
    rows = ["a,b,c,target"] + [f"{x[0]:.4f},{x[1]:.4f},{x[2]:.4f},{label}"
                               for x, label in zip(rng.normal(size=(len(labels), 3)), labels, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("model", ["sklearn:logistic", "sklearn:sgd"])
def test_a_one_class_site_returns_the_servers_layout(tmp_path: Path, model: str) -> None:
    shared = _site_csv(tmp_path / "shared.csv", ["benign", "malignant", "other"] * 10)
    site = _site_csv(tmp_path / "site.csv", ["malignant"] * 12)  # this site saw one of the three classes
    cfg = RunConfig(dataset=str(shared), model=model, labels="benign,malignant,other", clients=2, progress=False)
    server = build_simulation(cfg, side="server")
    client = build_client(cfg, ClientConfig(data=str(site)), "site-a")
    res = client.fit_task(FitIns(server.initial_parameters, {"seed": 0, "round": 1}))
    assert {k: v.shape for k, v in res.parameters.items()} == {"coef": (3, 3), "intercept": (3,)}
    assert res.num_examples == 10  # its 12 rows less the 20% it keeps for federated evaluation
