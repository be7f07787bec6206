"""Building a run from its config: settings reach every component, wrappers included."""

from __future__ import annotations

import pytest

from fedloom import FederatedLoop, RoundFailedError, RunConfig
from fedloom.app.build import build_simulation
from fedloom.app.layers import client_layers
from fedloom.backends import InlinePool
from fedloom.core.client_state import ClientStateStore


@pytest.mark.parametrize("dp", ["none", "central"])
def test_min_fit_results_reaches_the_strategy_under_central_dp_too(dp: str) -> None:
    """A deployment's min_clients_aggregate used to be set only `if hasattr(strategy, ...)`, so
    central DP (a wrapper) silently ignored it; now it flows through the constructors."""
    cfg = RunConfig(dataset="iris", model="linear", clients=4, rounds=1, dp=dp, noise_multiplier=0.5,
                    partition="iid", progress=False)
    sim = build_simulation(cfg, min_fit_results=3)
    assert sim.strategy.min_fit_results == 3

    def two_fail(cid: str):
        if cid in ("0", "1"):
            raise RuntimeError("offline")
        return sim.client_fn(cid)

    loop = FederatedLoop(sim.strategy, InlinePool(two_fail, 4), num_rounds=1)
    with pytest.raises(RoundFailedError, match="2 valid results, 3 needed"):
        loop.run(sim.initial_parameters)


def test_client_layers_are_one_ordered_list() -> None:
    cfg = RunConfig(dataset="iris", clients=10, dp="local", noise_multiplier=0.1, secagg=True, attack="sign_flip",
                    attackers=0.2, stragglers=0.1, compression="none", compress_broadcast=True)
    from fedloom.compression.wire import Float32Codec

    layers = client_layers(cfg, num_clients=10, states=ClientStateStore(), codec=Float32Codec())
    assert [layer.name for layer in layers] == ["local_dp", "secagg", "attack", "stragglers", "compression"]
    assert client_layers(RunConfig(), num_clients=10, states=ClientStateStore()) == []
