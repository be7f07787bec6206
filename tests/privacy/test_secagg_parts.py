"""SecAgg+ building blocks: Shamir sharing, the neighbour graph, the client's stage guards."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.errors import ValidationError
from fedloom.privacy.secagg import SecAggClient, default_degree, neighbour_graph
from fedloom.privacy.secagg.protocol import open_shares, seal_shares
from fedloom.privacy.secagg.shamir import combine, split

from .helpers import DeltaClient


def test_shamir_any_threshold_subset_recovers_and_fewer_do_not():
    secret = bytes(range(32))
    xs = np.arange(1, 10)
    shares = split(secret, xs, threshold=4)
    assert combine(xs[[0, 3, 5, 8]], shares[[0, 3, 5, 8]]) == secret
    assert combine(xs[[1, 2, 6, 7]], shares[[1, 2, 6, 7]]) == secret
    with pytest.raises(ValidationError):  # 3 < 4 shares interpolate to a wrong polynomial
        assert combine(xs[:3], shares[:3]) != secret


def test_neighbour_graph_is_regular_symmetric_and_complete_on_request():
    n = 30
    k = default_degree(n)
    graph = neighbour_graph(n, k, np.random.default_rng(1))
    assert all(len(nb) == k for nb in graph)
    assert all(i in graph[j] and i not in graph[i] for i in range(n) for j in graph[i])
    complete = neighbour_graph(n, -1, np.random.default_rng(1))
    assert all(len(nb) == n - 1 for nb in complete)


def test_sealed_shares_reject_tampering_and_misrouting():
    key = bytes(32)
    blob = seal_shares(key, 3, 1, 2, bytes(64), bytes(64))
    b, s = open_shares(key, blob, 3, 1, 2)
    assert b.shape == (16,) and s.shape == (16,)
    with pytest.raises(ValidationError):
        open_shares(key, blob, 3, 1, 4)
    with pytest.raises(ValidationError):
        open_shares(key, blob[:-1] + bytes([blob[-1] ^ 1]), 3, 1, 2)


def test_client_refuses_stages_out_of_order():
    store = ClientStateStore()
    client = SecAggClient(DeltaClient(np.ones(3), 5), state=store.get("0"))
    glob = Parameters({"w": np.zeros(3, np.float32)})
    with pytest.raises(ValidationError, match="without a key advertisement"):
        client.fit_task(FitIns(glob, {"round": 1, "secagg_stage": "mask", "secagg_index": 0}))
    client.fit_task(FitIns(glob, {"round": 1, "secagg_stage": "advertise", "secagg_index": 0}))
    rebuilt = SecAggClient(DeltaClient(np.ones(3), 5), state=store.get("0"))  # as simulation does
    with pytest.raises(ValidationError, match="out of order"):
        rebuilt.fit_task(FitIns(glob, {"round": 1, "secagg_stage": "unmask", "secagg_index": 0}))
    # Without a stage it is the inner client.
    assert np.allclose(client.fit(glob, {"round": 1}).parameters["w"], 1.0)
