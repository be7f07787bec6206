"""Attacker: the SecAgg ring and shares (issue 10, finding 6).

* For ``secagg_bits >= 56`` the float64 scale of the quantizer rounded up past the ring's bound:
  an update at the clip norm encoded to ``+m/2`` and decoded as ``-2`` times the bound; with central
  DP's clip 1.0 (weight 1.0 at the bound) every DP + SecAgg round failed. The scale is now an
  integer number of levels, checked here for every allowed ``(bits, n)`` at the bound.
* A threshold of 1 makes every Shamir share equal to the secret: any single neighbour holding a
  share could unmask a client. It is refused by the config, the pool and the client.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedloom import RunConfig
from fedloom.backends import InlinePool
from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.engine import FederatedLoop
from fedloom.errors import ConfigError, ValidationError
from fedloom.privacy.dp import CentralDP
from fedloom.privacy.options import PrivacyOptions
from fedloom.privacy.secagg import Quantizer, SecAggClient, SecAggPool
from fedloom.privacy.secagg.shamir import split
from fedloom.strategies import FedAvg

from .helpers import Delta


class RoundUp:
    """A 'generator' whose uniforms are 0: stochastic rounding always rounds away from floor (the worst case)."""

    def random(self, shape):
        return np.zeros(shape)


def _max_clients(bits: int) -> int:
    """The most clients a ring of 2^bits holds: at least 2 levels per bound (half // n >= 2)."""
    return ((1 << (bits - 1)) - 1) // 2


def _client_counts(bits: int) -> list[int]:
    top = _max_clients(bits)
    return sorted({n for n in (1, 2, 3, 7, 10, 100, 1000, 10**6, top - 1, top) if 1 <= n <= top})


@pytest.mark.parametrize("bits", range(3, 65))
def test_every_ring_decodes_the_sum_of_n_clients_at_the_bound(bits):
    # bits = 2 holds no client (half = 1): refused, as below.
    for n in _client_counts(bits):
        for bound in (1.0, 0.37, 100.0):
            q = Quantizer(bits, n, bound)
            for sign in (1.0, -1.0):
                one = q.encode(np.array([sign * bound, sign * bound * 0.999999]), RoundUp())
                # n copies of the extreme encoding, summed in the ring with exact integer arithmetic
                total = np.array([(n * int(v)) % q.modulus for v in one], dtype=np.uint64).astype(q.dtype)
                decoded = q.decode(total)
                assert np.sign(decoded[0]) == sign, (bits, n, bound)  # before the fix: -2 x bound at bits >= 56
                slack = q.error_bound + 4 * 2.0**-52 * n * bound  # rounding, plus float64's own
                assert abs(decoded[0] - sign * n * bound) <= slack, (bits, n, bound)
                assert abs(decoded[1] - sign * n * bound * 0.999999) <= slack, (bits, n, bound)
    with pytest.raises(ConfigError, match="cannot hold the sum"):
        Quantizer(bits, _max_clients(bits) + 1, 1.0)


def test_a_ring_of_two_bits_is_refused():
    with pytest.raises(ConfigError):
        Quantizer(2, 1, 1.0)


@pytest.mark.parametrize("bits", [32, 57, 60, 64])
def test_central_dp_over_secagg_works_in_wide_rings(bits):
    # all at the clip norm 1.0; each client's weight 1.0 sits at the quantizer's bound
    deltas = [np.array([0.6, 0.8]), np.array([-0.6, 0.8]), np.array([0.0, 1.0]), np.array([0.0, -1.0])]
    store = ClientStateStore()
    pool = SecAggPool(InlinePool(lambda cid: SecAggClient(Delta(deltas[int(cid)]), state=store.get(cid)), 4), bits=bits)
    dp = CentralDP(FedAvg(), noise_multiplier=0.0, clip=1.0)
    result = FederatedLoop(dp, pool, num_rounds=1, seed=0).run(Parameters({"w": np.zeros(2)}))  # before: round failed
    np.testing.assert_allclose(result.parameters["w"], np.mean(deltas, axis=0), atol=1e-6)


def test_threshold_one_makes_a_share_the_secret_and_is_refused_everywhere():
    secret = bytes(range(32))
    shares = split(secret, np.array([1, 2, 3]), threshold=1)
    assert shares[1].astype("<u2").tobytes() == secret  # the premise: one share IS the secret
    with pytest.raises(ConfigError, match="threshold 1"):
        PrivacyOptions(secagg=True, secagg_threshold=1).validate()
    with pytest.raises(ConfigError, match="threshold 1"):
        RunConfig(clients=5, secagg=True, secagg_threshold=1).validate()
    with pytest.raises(ConfigError, match="threshold 1"):
        SecAggPool(InlinePool(lambda cid: Delta(np.zeros(2)), 3), threshold=1)
    PrivacyOptions(secagg=True, secagg_threshold=2).validate()
    PrivacyOptions(secagg=True, secagg_threshold=0).validate()


def test_a_client_refuses_to_share_with_threshold_one_even_if_the_server_asks():
    client = SecAggClient(Delta(np.zeros(2)))
    client.fit_task(FitIns(Parameters(), {"round": 1, "secagg_stage": "advertise", "secagg_index": 0}))
    others = [SecAggClient(Delta(np.zeros(2))) for _ in range(2)]
    keys = [o.fit_task(FitIns(Parameters(), {"round": 1, "secagg_stage": "advertise", "secagg_index": i + 1}))
            for i, o in enumerate(others)]
    payload = {"secagg": Parameters({
        "peers": np.array([1, 2]),
        "pk_c": np.stack([k.extras["secagg"]["pk_c"] for k in keys]),
        "pk_s": np.stack([k.extras["secagg"]["pk_s"] for k in keys]),
    })}
    with pytest.raises(ValidationError, match="threshold 1"):
        client.fit_task(FitIns(Parameters(), {"round": 1, "secagg_stage": "share", "secagg_index": 0,
                                              "secagg_threshold": 1}, payload))
