"""Malicious clients: each attack's update, computed by hand, and the attacker choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedloom import Client, EvaluateRes, FitIns, FitRes, Parameters
from fedloom.core.types import Config
from fedloom.errors import ConfigError
from fedloom.scenarios import AlieCollusion, MaliciousClient, alie_z, choose_attackers
from fedloom.torch import TorchClient

W0 = Parameters({"w": np.array([1.0, 1.0])})


class _Fixed(Client):
    def __init__(self, value: list[float]) -> None:
        self.value = value

    def get_parameters(self, config: Config) -> Parameters:
        return W0

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return FitRes(Parameters({"w": np.array(self.value)}), 7, {"train_loss": 0.5})

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return EvaluateRes(0.25, 3)


def test_choose_attackers_is_fixed_by_seed_and_counts() -> None:
    a = choose_attackers(20, 0.2, seed=5)
    assert a == choose_attackers(20, 0.2, seed=5) and len(a) == 4 and len(set(a)) == 4
    assert a != choose_attackers(20, 0.2, seed=6)
    assert choose_attackers(20, 0.0, seed=5) == [] and len(choose_attackers(3, 0.01, seed=0)) == 1


def test_sign_flip_sends_minus_scale_times_the_honest_update() -> None:
    res = MaliciousClient(_Fixed([2.0, 0.5]), attack="sign_flip", scale=3.0).fit_task(FitIns(W0, {"seed": 1}))
    # honest update [1, -0.5] -> -3 * [1, -0.5] = [-3, 1.5]; parameters = W0 + that
    assert res.parameters["w"].tolist() == [-2.0, 2.5]
    assert res.num_examples == 7 and res.metrics["malicious"] == 1


def test_gaussian_sends_seeded_noise() -> None:
    client = MaliciousClient(_Fixed([2.0, 0.5]), attack="gaussian", scale=2.0)
    a = client.fit_task(FitIns(W0, {"seed": 1})).parameters["w"]
    b = client.fit_task(FitIns(W0, {"seed": 1})).parameters["w"]
    c = client.fit_task(FitIns(W0, {"seed": 2})).parameters["w"]
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    big = MaliciousClient(_Fixed([0.0]), attack="gaussian", scale=2.0).fit_task(
        FitIns(Parameters({"w": np.zeros(20000)}), {"seed": 3}))
    assert np.std(big.parameters["w"]) == pytest.approx(2.0, rel=0.03)


def test_alie_sends_mean_minus_z_std_of_the_attackers_updates() -> None:
    honest = {"0": _Fixed([2.0, 1.0]), "1": _Fixed([4.0, 1.0])}  # updates [1, 0] and [3, 0]
    collusion = AlieCollusion(["0", "1"], honest.__getitem__, lambda rnd, cid: 0, z=1.5)
    res = MaliciousClient(honest["0"], attack="alie", collusion=collusion).fit_task(FitIns(W0, {"round": 1}))
    # mean [2, 0], std [1, 0] -> update [2 - 1.5, 0] -> parameters [1.5, 1]
    assert res.parameters["w"].tolist() == [1.5, 1.0]


def test_alie_z_matches_baruch_et_al() -> None:
    # n = 50, m = 24 (the paper's example): s = 26 - 24 = 2, z = Phi^-1(48/50) ~ 1.75
    assert alie_z(50, 24) == pytest.approx(1.7507, abs=1e-3)
    assert alie_z(20, 4) == pytest.approx(0.3853, abs=1e-3)  # s = 7, Phi^-1(0.65)


def test_label_flip_trains_on_flipped_labels_and_evaluates_honestly() -> None:
    torch.manual_seed(0)
    x = torch.randn(12, 3)
    y = torch.tensor([0, 1, 2] * 4)

    def make(labels: torch.Tensor) -> TorchClient:
        torch.manual_seed(1)
        return TorchClient(model_fn=lambda: nn.Linear(3, 3), train_data=(x, labels), lr=0.5, batch_size=4)

    w = make(y).get_parameters({})
    attacked = MaliciousClient(make(y), attack="label_flip")
    got = attacked.fit_task(FitIns(w, {"seed": 4, "local_epochs": 2}))
    want = make(2 - y).fit(w, {"seed": 4, "local_epochs": 2})
    for name in want.parameters:
        np.testing.assert_array_equal(got.parameters[name], want.parameters[name])
    honest_eval = make(y).evaluate(got.parameters, {})
    assert attacked.evaluate(got.parameters, {}).loss == pytest.approx(honest_eval.loss)


def test_attack_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="unknown attack"):
        MaliciousClient(_Fixed([0.0]), attack="none")
    with pytest.raises(ConfigError, match="AlieCollusion"):
        MaliciousClient(_Fixed([0.0]), attack="alie")
    with pytest.raises(ConfigError, match="label_flip"):
        MaliciousClient(_Fixed([0.0]), attack="label_flip")


def test_label_flip_works_under_local_dp() -> None:
    """The attacker's TorchClient sits inside a LocalDPClient: its labels are still flipped (the attack
    is set up on the TorchClient's trainer, found through the wrappers' ``inner``)."""
    from fedloom.privacy.dp import LocalDPClient

    torch.manual_seed(0)
    x = torch.randn(12, 3)
    y = torch.tensor([0, 1, 2] * 4)

    def make(labels: torch.Tensor) -> LocalDPClient:
        torch.manual_seed(1)
        inner = TorchClient(model_fn=lambda: nn.Linear(3, 3), train_data=(x, labels), lr=0.5, batch_size=4)
        return LocalDPClient(inner, clip=1e6, noise_multiplier=0.0)  # no noise, no clipping: the update as trained

    w = make(y).get_parameters({})
    attacked = MaliciousClient(make(y), attack="label_flip")
    got = attacked.fit_task(FitIns(w, {"seed": 4, "local_epochs": 2}))
    want = make(2 - y).fit_task(FitIns(w, {"seed": 4, "local_epochs": 2}))
    honest = make(y).fit_task(FitIns(w, {"seed": 4, "local_epochs": 2}))
    for name in want.parameters:
        np.testing.assert_array_equal(got.parameters[name], want.parameters[name])
    assert not np.allclose(got.parameters.flatten(), honest.parameters.flatten())
    assert got.metrics["malicious"] == 1


def test_label_flip_is_refused_where_it_cannot_work() -> None:
    from fedloom.privacy.dp import LocalDPClient

    x = torch.randn(8, 3)
    regression = TorchClient(model_fn=lambda: nn.Linear(3, 1), train_data=(x, x[:, 0]), task="regression")
    with pytest.raises(ConfigError, match="label_flip attack needs a classification task"):
        MaliciousClient(regression, attack="label_flip")
    with pytest.raises(ConfigError, match="needs a TorchClient.*found _Fixed inside LocalDPClient"):
        MaliciousClient(LocalDPClient(_Fixed([0.0]), clip=1.0, noise_multiplier=0.0), attack="label_flip")


def test_label_flip_set_up_twice_still_flips_once() -> None:
    x, y = torch.randn(12, 3), torch.tensor([0, 1, 2] * 4)

    def make(labels: torch.Tensor) -> TorchClient:
        torch.manual_seed(1)
        return TorchClient(model_fn=lambda: nn.Linear(3, 3), train_data=(x, labels), lr=0.5, batch_size=4)

    client = make(y)
    w = client.get_parameters({})
    MaliciousClient(client, attack="label_flip")
    got = MaliciousClient(client, attack="label_flip").fit_task(FitIns(w, {"seed": 1}))
    want = make(2 - y).fit(w, {"seed": 1})
    np.testing.assert_array_equal(got.parameters.flatten(), want.parameters.flatten())


def test_scale_boosts_the_honest_update_and_huge_weight_flips_it_and_claims_1e15_examples() -> None:
    from fedloom.scenarios import ATTACKS
    from fedloom.scenarios.attacks import HUGE_NUM_EXAMPLES

    assert {"scale", "huge_weight"} <= set(ATTACKS.names()) and ATTACKS.entry("huge_weight").help
    boosted = MaliciousClient(_Fixed([2.0, 0.5]), attack="scale", scale=1000.0).fit_task(FitIns(W0, {"seed": 1}))
    assert boosted.parameters["w"].tolist() == [1001.0, -499.0] and boosted.num_examples == 7  # W0 + 1000 * [1, -.5]
    heavy = MaliciousClient(_Fixed([2.0, 0.5]), attack="huge_weight").fit_task(FitIns(W0, {"seed": 1}))
    assert heavy.parameters["w"].tolist() == [0.0, 1.5] and heavy.num_examples == HUGE_NUM_EXAMPLES == 10**15
    assert heavy.metrics["malicious"] == 1
