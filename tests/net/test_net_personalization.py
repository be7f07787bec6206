"""FedPer over the real transport (TLS gRPC, token auth): the server never receives a head parameter, and each
deployed client keeps its own head between rounds."""

from __future__ import annotations

from typing import Any

import pytest

from fedloom import RunConfig
from fedloom.app.build import assemble_loop, build_simulation
from fedloom.personalization.fedper import HEAD

BODY = {"0.weight", "0.bias"}


class Received:
    def __init__(self) -> None:
        self.names: list[set[str]] = []

    def on_fit_results(self, rnd: int, previous: Any, results: Any, failures: Any) -> None:
        self.names += [set(res.parameters) for _, res in results]

    def on_round_end(self, record: Any, state: Any) -> None:
        pass


@pytest.mark.slow  # a gRPC server and three client threads
def test_fedper_over_grpc_sends_no_head(harness) -> None:  # type: ignore[no-untyped-def]
    cfg = RunConfig(dataset="iris", clients=3, rounds=2, hidden=8, personalization="fedper", fraction_evaluate=1.0,
                    progress=False, min_clients=3)
    sim = build_simulation(cfg)
    assert set(sim.initial_parameters) == BODY
    h = harness(min_clients=3)
    for cid in ("0", "1", "2"):
        h.start(cid, sim.client_fn(cid))  # each deployed client: its own PersonalClient and state
    spy = Received()
    loop = assemble_loop(sim, h.pool, observers=[spy])
    result = loop.run(sim.initial_parameters)
    assert not h.errors
    assert set(result.state.parameters) == BODY
    assert len(spy.names) == 6 and all(names == BODY for names in spy.names)
    assert all(set(sim.client_states.get(cid)[HEAD]) == {"2.weight", "2.bias"} for cid in ("0", "1", "2"))
    last = result.history[-1]
    assert set(last.clients) == {"0", "1", "2"} and last.metrics["fed_personal_accuracy"] > 0
