"""Compression through the round loop: client wrapper, error feedback, decoding, bytes counted."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom import Client, EvaluateRes, FedAvg, FitRes, Parameters, simulate
from fedloom.compression import RESIDUAL_KEY, CompressedClient, StochasticQuantizer, TopK, UpdateCodec
from fedloom.core.client_state import ClientStateStore
from fedloom.engine.codec import decode_results
from fedloom.strategies import ServerOpt

GLOBAL = Parameters({"w": np.zeros(4, np.float32), "b": np.ones(2, np.float32)})


class ShiftClient(Client):
    """Trains by adding a fixed shift (per client) to what it receives; remembers what it got."""

    def __init__(self, shift: Parameters, n: int = 1) -> None:
        self.shift, self.n = shift, n
        self.received: list[Parameters] = []

    def get_parameters(self, config):
        return GLOBAL

    def fit(self, parameters, config):
        self.received.append(parameters)
        return FitRes(Parameters({k: v + self.shift[k] for k, v in parameters.items()}), self.n)

    def evaluate(self, parameters, config):
        return EvaluateRes(0.0, 1)


def _shift(w, b) -> Parameters:
    return Parameters({"w": np.array(w, np.float32), "b": np.array(b, np.float32)})


def test_error_feedback_residual_carries_over_rounds():
    store = ClientStateStore()
    codec = TopK(fraction=1 / 6)  # one of six entries per round
    shifts = [_shift([3, 1, 0.5, 0], [0, 0]), _shift([0, 1, 0, 0], [0, 0.25])]
    sent = []
    for rnd, shift in enumerate(shifts):
        client = CompressedClient(ShiftClient(shift), codec=codec, state=store.get("7"))  # rebuilt each round
        res = client.fit(GLOBAL, {"seed": rnd})
        sent.append((res.parameters["topk::indices"].tolist(), res.parameters["topk::values"].tolist()))
    # Round 1 sends w[0]=3 and keeps [0, 1, .5, 0 | 0, 0]; round 2 adds it: [0, 2, .5, 0 | 0, .25].
    assert sent == [([0], [3.0]), ([1], [2.0])]
    np.testing.assert_allclose(store.get("7")[RESIDUAL_KEY].flatten(), [0, 0, 0.5, 0, 0, 0.25])


def test_without_error_feedback_nothing_is_kept():
    store = ClientStateStore()
    client = CompressedClient(ShiftClient(_shift([3, 1, 0, 0], [0, 0])), codec=TopK(fraction=0.2),
                              error_feedback=False, state=store.get("0"))
    client.fit(GLOBAL, {})
    assert RESIDUAL_KEY not in store.get("0")


def test_loop_decodes_before_validation_and_counts_compressed_bytes():
    clients = {"0": ShiftClient(_shift([1, 2, 3, 4], [0, 0]), n=1), "1": ShiftClient(_shift([3, 2, 1, 0], [1, 1]), n=3)}
    codec = StochasticQuantizer(bits=8)
    result = simulate(
        lambda cid: CompressedClient(clients[cid], codec=codec),
        num_clients=2, strategy=FedAvg(fraction_evaluate=0.0), rounds=1, initial_parameters=GLOBAL,
        codec=UpdateCodec(codec),
    )
    # Example-weighted mean shift: (1*[1,2,3,4 | 0,0] + 3*[3,2,1,0 | 1,1]) / 4, within one q8 step.
    expected = np.array([2.5, 2.0, 1.5, 1.0, 0.75, 0.75])
    got = result.parameters.flatten() - GLOBAL.flatten()
    assert np.all(np.abs(got - expected) <= 4 / 127)
    assert result.parameters["w"].dtype == np.float32
    m = result.final
    assert m["fit_clients"] == 2
    assert m["bytes_up"] == 2 * (4 + 4 + 2 + 4)  # int8 codes + one float32 scale per tensor, per client
    assert m["bytes_up_per_client"] == 14
    assert m["bytes_down"] == 2 * GLOBAL.nbytes


def test_compressed_broadcast_halves_bytes_down_and_updates_are_taken_against_it():
    inner = ShiftClient(_shift([1, 1, 1, 1], [1, 1]))
    params = Parameters({"w": np.full(4, 0.1, np.float32), "b": np.ones(2, np.float32)})
    result = simulate(lambda cid: CompressedClient(inner, codec=TopK(fraction=1.0)), num_clients=1,
                      strategy=FedAvg(fraction_evaluate=0.0), rounds=2, initial_parameters=params,
                      codec=UpdateCodec(TopK(fraction=1.0), compress_broadcast=True))
    assert result.final["bytes_down"] == params.nbytes // 2
    assert inner.received[0]["w"].dtype == np.float32  # widened by the wrapper
    assert inner.received[0]["w"][0] == np.float32(np.float16(0.1))
    # The server adds each decoded update to its full-precision model: exactly +1 per round.
    np.testing.assert_allclose(result.parameters["w"], 2.1, rtol=1e-6)


def test_undecodable_payload_is_a_failure_of_that_client_only():
    codec = StochasticQuantizer(bits=8)
    good = CompressedClient(ShiftClient(_shift([1, 1, 1, 1], [0, 0])), codec=codec).fit(GLOBAL, {})
    bad = FitRes(Parameters({"w": np.zeros(4, np.float32), "b": np.zeros(2, np.float32)}), 5)  # uncompressed
    decoded, failures = decode_results(UpdateCodec(codec), [("0", good), ("1", bad)], GLOBAL)
    assert [cid for cid, _ in decoded] == ["0"]
    assert failures[0].cid == "1" and "undecodable update" in failures[0].reason and "wrong names" in failures[0].reason



@pytest.mark.parametrize("codec", [StochasticQuantizer(bits=4, block=2), TopK(fraction=0.5)])
def test_round_fails_over_to_valid_clients(codec):
    def client_fn(cid):
        inner = ShiftClient(_shift([1, 1, 1, 1], [1, 1]))
        if cid == "1":
            return inner  # forgot to compress: its plain parameters cannot be decoded
        return CompressedClient(inner, codec=codec, error_feedback=False)

    result = simulate(client_fn, num_clients=2, strategy=FedAvg(fraction_evaluate=0.0), rounds=1,
                      initial_parameters=GLOBAL, codec=UpdateCodec(codec))
    assert result.final["fit_clients"] == 1
    assert result.final["fit_failures"] == 1


def test_decoded_updates_reach_custom_aggregators_and_server_optimizers_unchanged():
    seen = []

    def median(updates, weights):  # a robust aggregator: sees decoded float64 update vectors
        seen.append([u.copy() for u in updates])
        return np.median(np.stack(updates), axis=0)

    # a server optimizer: sees the aggregated (decoded) update, doubles it
    double = ServerOpt(init=lambda params: (), update=lambda delta, opt_state: (2.0 * delta, opt_state))

    shifts = {"0": [1, 1, 1, 1], "1": [2, 2, 2, 2], "2": [100, 100, 100, 100]}
    codec = TopK(fraction=1.0)  # lossless up to float32: exact numbers
    result = simulate(
        lambda cid: CompressedClient(ShiftClient(_shift(shifts[cid], [0, 0])), codec=codec),
        # max_norm_ratio=0: client 2's update is 50x the median one, which FedAvg's default norm bound would
        # scale down before any aggregator sees it; this test is about what the codec delivers
        num_clients=3, strategy=FedAvg(aggregator=median, server_opt=double, max_norm_ratio=0), rounds=1,
        initial_parameters=GLOBAL,
        codec=UpdateCodec(codec),
    )
    np.testing.assert_allclose(seen[0][2], [100, 100, 100, 100, 0, 0])
    np.testing.assert_allclose(result.parameters["w"], 4.0)  # 2 x median shift of 2


def test_task_extras_reach_the_inner_client_and_its_extras_come_back():
    from fedloom import FitIns

    class NeedsExtras(ShiftClient):  # e.g. a SCAFFOLD client reading the server's control variate
        def fit_task(self, ins):
            res = self.fit(ins.parameters, ins.config)
            res.extras = {"control": Parameters({"c": ins.extras["control"]["c"] * 2})}
            return res

    client = CompressedClient(NeedsExtras(_shift([1, 0, 0, 0], [0, 0])), codec=TopK(fraction=0.5))
    res = client.fit_task(FitIns(GLOBAL, {}, extras={"control": Parameters({"c": np.ones(2)})}))
    assert res.extras["control"]["c"].tolist() == [2.0, 2.0]
    assert res.parameters.names == ["topk::indices", "topk::values"]
