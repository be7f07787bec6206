"""The client side of each personalization method, on a small model and data (no run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.errors import ConfigError, ValidationError
from fedloom.personalization import Ditto, FedPer, FedRep, FineTune, PersonalClient, head_names
from fedloom.personalization.ditto import PERSONAL_MODEL
from fedloom.personalization.fedper import HEAD
from fedloom.torch import TorchClient
from fedloom.torch.params import module_parameters

HEAD_NAMES = ["2.weight", "2.bias"]
BODY_NAMES = ["0.weight", "0.bias"]


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def data(seed: int = 1, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def client(method: object, state: dict | None = None, **kw: object) -> PersonalClient:
    return PersonalClient(method=method, model_fn=model, train_data=data(), test_data=data(2, 20), lr=0.1,
                          batch_size=8, state=state if state is not None else {}, **kw)  # type: ignore[arg-type]


def body(params: Parameters) -> Parameters:
    return Parameters({k: params[k] for k in BODY_NAMES})


def test_the_head_is_the_last_layer_unless_named() -> None:
    names = list(model().state_dict())
    assert head_names(names, []) == HEAD_NAMES
    assert head_names(names, ["0"]) == BODY_NAMES
    with pytest.raises(ConfigError, match="matches no parameter"):
        head_names(names, ["head"])
    with pytest.raises(ConfigError, match="nothing would be federated"):
        head_names(names, ["0", "2"])


@pytest.mark.parametrize("method", [FedPer(), FedRep(head_epochs=1)])
def test_fedper_and_fedrep_send_the_body_and_keep_a_trained_head(method: FedPer) -> None:
    c = client(method)
    init = module_parameters(model())
    res = c.fit_task(FitIns(body(init), {"seed": 3, "local_epochs": 2}))
    assert list(res.parameters) == BODY_NAMES  # the head never leaves
    assert sorted(c.get_parameters({})) == sorted(BODY_NAMES)
    head = c.state[HEAD]
    assert list(head) == HEAD_NAMES and not np.allclose(head["2.weight"], init["2.weight"])  # trained locally
    # the next task starts from the stored head, not the initial one
    again = c.fit_task(FitIns(res.parameters, {"seed": 4}))
    assert list(again.parameters) == BODY_NAMES and not np.allclose(c.state[HEAD]["2.weight"], head["2.weight"])


def test_fedrep_trains_the_head_with_the_body_frozen_first() -> None:
    """With its body phase made a no-op (lr 0 for the body would need two optimizers, so check the head phase
    alone): after FedRep's task the body moved and the head moved; a head-only phase leaves the body as sent."""
    from fedloom.personalization.fedrep import frozen
    from fedloom.torch.trainers import run_epochs

    c = client(FedRep())
    init = module_parameters(model())
    c.load(init)
    with frozen(c.model, BODY_NAMES):
        run_epochs(c.context(), {"seed": 1, "local_epochs": 1})
    after = module_parameters(c.model)
    assert all(np.array_equal(after[k], init[k]) for k in BODY_NAMES)
    assert not np.allclose(after["2.weight"], init["2.weight"])
    assert all(p.requires_grad for p in c.model.parameters())  # unfrozen afterwards


def test_a_server_that_sends_the_head_is_refused() -> None:
    c = client(FedPer())
    with pytest.raises(ValidationError, match="same --personalization"):
        c.fit_task(FitIns(module_parameters(model()), {"seed": 0}))


def test_ditto_with_a_huge_lambda_is_the_global_model() -> None:
    c = client(Ditto(lam=1e12))
    glob = module_parameters(model())
    c.state[PERSONAL_MODEL] = Parameters({k: v + 0.5 for k, v in glob.items()})  # far from the global model
    c.fit_task(FitIns(glob, {"seed": 5, "local_epochs": 2}))
    personal = c.state[PERSONAL_MODEL]
    for name in glob:
        np.testing.assert_allclose(personal[name], glob[name], atol=1e-6)


def test_ditto_with_lambda_zero_is_purely_local_training() -> None:
    """Two rounds of Ditto (lambda = 0) give the personal model that two rounds of local training from the first
    global model give, whatever global models arrive in between."""
    c = client(Ditto(lam=0.0))
    w0 = module_parameters(model())
    other = Parameters({k: v * 0.3 - 1.0 for k, v in w0.items()})  # some other global model in round 2
    c.fit_task(FitIns(w0, {"seed": 11, "local_epochs": 1}))
    c.fit_task(FitIns(other, {"seed": 12, "local_epochs": 2}))
    local = TorchClient(model_fn=model, train_data=data(), lr=0.1, batch_size=8)
    local.train(w0, {"seed": 11, "local_epochs": 1})
    local.train(module_parameters(local.model), {"seed": 12, "local_epochs": 2})
    expected = module_parameters(local.model)
    for name in expected:
        assert np.array_equal(c.state[PERSONAL_MODEL][name], expected[name]), name


def test_ditto_sends_the_same_update_as_plain_training() -> None:
    glob = module_parameters(model())
    ins = FitIns(glob, {"seed": 7, "local_epochs": 1})
    ditto = client(Ditto(lam=0.5)).fit_task(ins)
    plain = TorchClient(model_fn=model, train_data=data(), lr=0.1, batch_size=8).fit_task(ins)
    assert all(np.array_equal(ditto.parameters[k], plain.parameters[k]) for k in glob)


def test_finetune_reports_both_models_and_keeps_nothing() -> None:
    c = PersonalClient(method=FineTune(steps=10), model_fn=model, train_data=data(), test_data=data(), lr=0.1,
                       batch_size=8)  # held-out data like the training data: local steps must help
    glob = module_parameters(model())
    res = c.evaluate(glob, {"seed": 1})
    plain = TorchClient(model_fn=model, train_data=data(), test_data=data()).evaluate(glob, {})
    assert res.loss == pytest.approx(plain.loss) and res.metrics["accuracy"] == plain.metrics["accuracy"]
    assert res.metrics["personal_loss"] < res.loss  # 10 steps on the client's data lower its loss
    assert c.state == {}
    assert c.evaluate(glob, {"seed": 1}).metrics == res.metrics  # deterministic, from the global model each time


def test_personal_state_lives_in_the_client_state_store_and_survives_a_save(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = ClientStateStore()
    c = client(FedPer(), state=store.get("0"))
    c.fit_task(FitIns(body(module_parameters(model())), {"seed": 1}))
    store.save(tmp_path / "s.safetensors")
    back = ClientStateStore()
    back.load(tmp_path / "s.safetensors")
    assert np.array_equal(back.get("0")[HEAD]["2.weight"], store.get("0")[HEAD]["2.weight"])


def test_apfl_sends_fedavgs_update_and_alpha_one_is_local_training() -> None:
    from fedloom.personalization import APFL
    from fedloom.personalization.apfl import ALPHA, LOCAL_MODEL

    w0 = module_parameters(model())
    other = Parameters({k: v * 0.3 - 1.0 for k, v in w0.items()})  # some other global model in round 2
    c = client(APFL(alpha=1.0, adapt=False))
    c.fit_task(FitIns(w0, {"seed": 11, "local_epochs": 1}))
    res = c.fit_task(FitIns(other, {"seed": 12, "local_epochs": 2}))
    sent = TorchClient(model_fn=model, train_data=data(), lr=0.1, batch_size=8).fit_task(
        FitIns(other, {"seed": 12, "local_epochs": 2}))
    assert all(np.array_equal(res.parameters[k], sent.parameters[k]) for k in w0)  # FedAvg's client, exactly
    local = TorchClient(model_fn=model, train_data=data(), lr=0.1, batch_size=8)
    local.train(w0, {"seed": 11, "local_epochs": 1})
    local.train(module_parameters(local.model), {"seed": 12, "local_epochs": 2})
    expected = module_parameters(local.model)  # alpha = 1: the mixture is v alone, trained on local data only
    for k in w0:
        np.testing.assert_allclose(c.state[LOCAL_MODEL][k], expected[k], rtol=1e-5, atol=1e-6)
    assert float(c.state[ALPHA]["alpha"][0]) == 1.0


def test_apfl_alpha_zero_is_the_global_model_and_alpha_adapts() -> None:
    from fedloom.personalization import APFL

    glob = module_parameters(model())
    c = client(APFL(alpha=0.0, adapt=False))
    c.fit_task(FitIns(glob, {"seed": 1}))
    assert all(np.array_equal(c.method.personal_model(c, glob)[k], glob[k]) for k in glob)  # type: ignore[attr-defined]
    res = c.evaluate(glob, {})
    assert res.metrics["personal_loss"] == pytest.approx(res.loss)
    adaptive = client(APFL(alpha=0.5, adapt=True))
    out = adaptive.fit_task(FitIns(glob, {"seed": 1, "local_epochs": 3}))
    assert 0.0 <= out.metrics["apfl_alpha"] <= 1.0 and out.metrics["apfl_alpha"] != 0.5
