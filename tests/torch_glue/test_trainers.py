"""Local trainers (the client half of an algorithm): each gives exactly the numbers of the code it
replaced, which is written out inline below as the reference; the registry; the vectorized
backend's trainer check; and a user's own trainer."""

from __future__ import annotations

import ast
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fedloom import FitIns, Parameters
from fedloom.backends.vectorized import VectorizedFallbackWarning, VectorizedPool, why_not_vectorizable
from fedloom.core.trainer import TRAINERS, LocalTrainer, TrainContext, TrainOutcome, trainer_for_task
from fedloom.errors import ConfigError, ValidationError
from fedloom.privacy.opacus import DPSGD, DPSGDTrainer
from fedloom.scenarios.attacks import LabelFlipTrainer
from fedloom.strategies import FedAdam, FedAvg, FedProx, Scaffold
from fedloom.torch import (
    AutoTrainer,
    EpochTrainer,
    ProximalTrainer,
    ScaffoldClient,
    ScaffoldTrainer,
    TorchClient,
    load_parameters,
    module_parameters,
)
from fedloom.torch.training import TensorData, train_epochs

SRC = Path(__file__).resolve().parents[2] / "src" / "fedloom"


def _data(n: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def _mlp() -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def _client(**kwargs: object) -> TorchClient:
    base: dict = {"model_fn": _mlp, "train_data": _data(), "lr": 0.1, "batch_size": 8, "local_epochs": 2}
    base.update(kwargs)
    cls = base.pop("cls", TorchClient)
    return cls(**base)


W = module_parameters(_mlp())


def _equal(a: Parameters, b: Parameters) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


# -- the replaced code, inline: TorchClient.train and ScaffoldClient.fit_task before trainers ----------------------
def _old_train(client: TorchClient, parameters: Parameters, config: dict, extra_loss=None) -> float:  # noqa: ANN001
    model = client.model
    load_parameters(model, parameters)
    generator = torch.Generator().manual_seed(int(config.get("seed", 0)))
    lr = float(config.get("lr", client.lr))
    optimizer = client.optimizer_fn([p for p in model.parameters() if p.requires_grad], lr)
    mu = float(config.get("proximal_mu", 0.0))
    if mu > 0:
        anchors = [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]
        inner = extra_loss

        def extra_loss(m: nn.Module) -> torch.Tensor:
            prox = 0.5 * mu * torch.stack([((p - a) ** 2).sum() for p, a in anchors]).sum()
            return prox if inner is None else prox + inner(m)

    return train_epochs(model, client.train_data, loss_fn=client.loss_fn, optimizer=optimizer,
                        epochs=int(config.get("local_epochs", client.local_epochs)),
                        batch_size=int(config.get("batch_size", client.batch_size)),
                        generator=generator, extra_loss=extra_loss, device=client.device)


def _old_scaffold(client: TorchClient, ins: FitIns) -> tuple[Parameters, float, Parameters]:
    c = ins.extras["scaffold_c"]
    c_i = client.state.get("scaffold_c_i")
    if c_i is None:
        c_i = Parameters({n: np.zeros_like(a) for n, a in c.items()})
    trainable = {n for n, p in client.model.named_parameters() if p.requires_grad}
    correction = {n: torch.from_numpy(np.asarray(c[n], np.float32) - np.asarray(c_i[n], np.float32))
                  for n in c if n in trainable}
    steps = [0]

    def linear_term(m: nn.Module) -> torch.Tensor:
        steps[0] += 1
        return torch.stack([(p * correction[n]).sum() for n, p in m.named_parameters() if n in correction]).sum()

    loss = _old_train(client, ins.parameters, ins.config, extra_loss=linear_term)
    new = module_parameters(client.model)
    k_lr = max(steps[0], 1) * float(ins.config.get("lr", client.lr))
    c_new, delta = {}, {}
    for n in c:
        drift = (np.asarray(ins.parameters[n], np.float64) - np.asarray(new[n], np.float64)) / k_lr
        value = np.asarray(c_i[n], np.float64) - np.asarray(c[n], np.float64) + drift
        c_new[n] = value.astype(c[n].dtype)
        delta[n] = (value - np.asarray(c_i[n], np.float64)).astype(c[n].dtype)
    client.state["scaffold_c_i"] = Parameters(c_new)
    return new, loss, Parameters(delta)


def _old_dp_sgd(client: TorchClient, settings: DPSGD, parameters: Parameters, config: dict) -> tuple[Parameters, float]:
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    model = client.model
    load_parameters(model, parameters)
    generator = torch.Generator().manual_seed(int(config.get("seed", 0)))
    lr = float(config.get("lr", client.lr))
    optimizer = client.optimizer_fn([p for p in model.parameters() if p.requires_grad], lr)
    data = client.train_data
    assert isinstance(data, TensorData)
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=int(config.get("batch_size", client.batch_size)),
                        generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dp_model, dp_opt, dp_loader = PrivacyEngine(accountant="rdp").make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=settings.noise_multiplier,
            max_grad_norm=settings.max_grad_norm, noise_generator=generator)
    last = 0.0
    try:
        dp_model.train()
        for _ in range(int(config.get("local_epochs", client.local_epochs))):
            total, count = 0.0, 0
            for xb, yb in dp_loader:
                if len(xb) == 0:
                    continue
                dp_opt.zero_grad(set_to_none=True)
                loss = client.loss_fn(dp_model(xb), yb)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    loss.backward()
                dp_opt.step()
                total += float(loss.detach()) * len(xb)
                count += len(xb)
            last = total / max(count, 1)
    finally:
        dp_model._close()
    return module_parameters(model), last


# -- each trainer gives today's numbers ----------------------------------------------------------------------------
@pytest.mark.parametrize("trainer", [None, EpochTrainer(), AutoTrainer()])
def test_epoch_trainer_is_the_old_training_loop(trainer: LocalTrainer | None) -> None:
    config = {"seed": 4, "lr": 0.3, "batch_size": 5, "local_epochs": 3, "round": 2}
    ref = _client()
    loss = _old_train(ref, W, config)
    res = _client(trainer=trainer).fit_task(FitIns(W, config))
    _equal(res.parameters, module_parameters(ref.model))
    assert res.metrics == {"train_loss": loss} and res.extras == {} and res.num_examples == 30


@pytest.mark.parametrize(("trainer", "config_mu"), [(None, 0.5), (ProximalTrainer(), 0.5), (ProximalTrainer(0.5), 0.0)])
def test_proximal_trainer_is_the_old_fedprox_term(trainer: LocalTrainer | None, config_mu: float) -> None:
    ref = _client()
    loss = _old_train(ref, W, {"seed": 3, "proximal_mu": 0.5})
    res = _client(trainer=trainer).fit_task(FitIns(W, {"seed": 3, "proximal_mu": config_mu}))
    _equal(res.parameters, module_parameters(ref.model))
    assert res.metrics == {"train_loss": loss}
    plain = _client().fit(W, {"seed": 3})
    assert not np.array_equal(plain.parameters.flatten(), res.parameters.flatten())  # the term did something


def test_proximal_trainer_checks_mu() -> None:
    with pytest.raises(ConfigError, match="mu"):
        ProximalTrainer(-1.0)


@pytest.mark.parametrize("mu", [0.0, 0.4])
@pytest.mark.parametrize("make", [lambda s: _client(cls=ScaffoldClient, state=s),
                                  lambda s: _client(trainer=ScaffoldTrainer(), state=s),
                                  lambda s: _client(state=s)])  # the default trainer runs SCAFFOLD when c is sent
def test_scaffold_trainer_is_the_old_scaffold_client(make, mu: float) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    c = Parameters({k: (rng.normal(size=v.shape) * 0.1).astype(v.dtype) for k, v in W.items()})
    ref_state: dict = {}
    state: dict = {}
    for seed, lr in ((3, 0.1), (4, 0.05)):  # the second task starts from the stored c_i
        ins = FitIns(W, {"seed": seed, "lr": lr, "proximal_mu": mu}, {"scaffold_c": c})
        want, loss, delta = _old_scaffold(_client(state=ref_state), ins)
        got = make(state).fit_task(ins)
        _equal(got.parameters, want)
        _equal(got.extras["scaffold_delta_c"], delta)
        _equal(state["scaffold_c_i"], ref_state["scaffold_c_i"])
        assert got.metrics == {"train_loss": loss}


def test_scaffold_trainer_refuses_a_task_without_c_and_dp_sgd() -> None:
    with pytest.raises(ValidationError, match="scaffold_c"):
        _client(trainer=ScaffoldTrainer()).fit_task(FitIns(W, {"seed": 0}))
    with pytest.raises(ConfigError, match="DP-SGD"):
        _client(cls=ScaffoldClient, dp_sgd=DPSGD())


@pytest.mark.parametrize("how", ["dp_sgd", "trainer"])
def test_dp_sgd_trainer_is_the_old_opacus_loop(how: str) -> None:
    # the same noise as the reference loop: the explicit (not private) reproducible mode
    settings = DPSGD(noise_multiplier=1.1, max_grad_norm=0.7, reproducible_noise=True)
    want, loss = _old_dp_sgd(_client(), settings, W, {"seed": 3, "batch_size": 10})
    state: dict = {}
    kwargs = {"dp_sgd": settings} if how == "dp_sgd" else {"trainer": DPSGDTrainer(settings)}
    client = _client(state=state, **kwargs)
    res = client.fit(W, {"seed": 3, "batch_size": 10})
    _equal(res.parameters, want)
    assert list(res.metrics) == ["train_loss", "dp_sgd_epsilon"] and res.metrics["train_loss"] == loss
    assert 0 < res.metrics["dp_sgd_epsilon"] < float("inf") and int(state["dp_sgd"]["steps"][0]) > 0
    again = client.fit(W, {"seed": 4}).metrics["dp_sgd_epsilon"]
    assert again > res.metrics["dp_sgd_epsilon"]  # steps add up across tasks in the client's state


def test_dp_sgd_and_trainer_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="dp_sgd= or trainer="):
        _client(dp_sgd=DPSGD(), trainer=EpochTrainer())


@pytest.mark.parametrize("inner", [None, EpochTrainer(), ProximalTrainer(0.3)])
def test_label_flip_trainer_trains_on_flipped_labels(inner: LocalTrainer | None) -> None:
    x, y = _data()
    config = {"seed": 2, "local_epochs": 2}
    got = _client(trainer=LabelFlipTrainer(inner)).fit(W, config)
    honest = inner if inner is not None else AutoTrainer()
    want = _client(train_data=(x, 2 - y), trainer=honest).fit(W, config)  # C = 3 classes: y -> 2 - y
    _equal(got.parameters, want.parameters)
    assert got.metrics == want.metrics


def test_label_flip_trainer_composes_with_dp_sgd() -> None:
    x, y = _data()
    settings = DPSGD(noise_multiplier=0.8, reproducible_noise=True)  # two runs compared: the same noise
    got = _client(trainer=LabelFlipTrainer(DPSGDTrainer(settings))).fit(W, {"seed": 5})
    want = _client(train_data=(x, 2 - y), dp_sgd=settings).fit(W, {"seed": 5})
    _equal(got.parameters, want.parameters)
    assert got.metrics == want.metrics


def test_label_flip_trainer_needs_classification() -> None:
    x = torch.randn(8, 5)
    client = TorchClient(model_fn=lambda: nn.Linear(5, 1), train_data=(x, x[:, 0]), task="regression",
                         trainer=LabelFlipTrainer())
    with pytest.raises(ConfigError, match="classification"):
        client.fit(client.get_parameters({}), {"seed": 0})


# -- the registry and the strategies' client halves -----------------------------------------------------------------
def test_registry_lists_the_trainers_and_refuses_unknown_names() -> None:
    names = TRAINERS.names()
    assert {"epochs", "fedprox", "scaffold", "dp_sgd", "label_flip"} <= set(names)
    assert TRAINERS.get("epochs") is EpochTrainer and TRAINERS.get("fedprox") is ProximalTrainer
    assert TRAINERS.get("scaffold") is ScaffoldTrainer and TRAINERS.get("dp_sgd") is DPSGDTrainer
    assert TRAINERS.get("label_flip") is LabelFlipTrainer and TRAINERS.get("auto") is AutoTrainer
    with pytest.raises(ConfigError) as err:
        TRAINERS.get("fedsgd")
    message = str(err.value)
    assert "unknown trainer 'fedsgd'" in message
    assert all(name in message for name in ("epochs", "fedprox", "scaffold", "dp_sgd", "label_flip"))
    for name in names:  # every built-in builds without arguments and satisfies the protocol
        assert isinstance(TRAINERS.get(name)(), LocalTrainer)


def test_strategies_name_their_client_half() -> None:
    from fedloom.privacy.dp import CentralDP

    assert FedAvg.local_trainer == "epochs" and FedAdam.local_trainer == "epochs"
    assert FedProx.local_trainer == "fedprox" and Scaffold.local_trainer == "scaffold"
    assert CentralDP(FedProx(), noise_multiplier=1.0, clip=1.0).local_trainer == "fedprox"
    for strategy in (FedAvg, FedProx, Scaffold):
        assert strategy.local_trainer in TRAINERS


def test_the_default_trainer_chooses_per_task() -> None:
    auto = AutoTrainer()
    c = Parameters({k: np.zeros_like(v) for k, v in W.items()})
    assert isinstance(trainer_for_task(auto, FitIns(W, {"seed": 0})), EpochTrainer)
    fedprox_mu0 = FitIns(W, {"proximal_mu": 0.0, "accept_partial_work": True})
    assert isinstance(trainer_for_task(auto, fedprox_mu0), EpochTrainer)
    assert isinstance(trainer_for_task(auto, FitIns(W, {"proximal_mu": 0.1})), ProximalTrainer)
    assert isinstance(trainer_for_task(auto, FitIns(W, {"proximal_mu": 0.1}, {"scaffold_c": c})), ScaffoldTrainer)
    assert isinstance(_client().trainer, AutoTrainer)


def test_light_modules_import_nothing_heavy_at_module_level() -> None:
    """core/trainer.py imports no framework; privacy/opacus.py imports Opacus and dp_accounting lazily
    and not TorchClient (which would close the old torch/client.py <-> privacy/opacus.py cycle)."""

    def top_level_imports(path: Path) -> set[str]:
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # module level only (not TYPE_CHECKING or function bodies)
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
        return found

    core = top_level_imports(SRC / "core" / "trainer.py")
    assert all(m == "__future__" or m.startswith(("fedloom.core", "typing", "collections", "dataclasses"))
               for m in core), core
    opacus = top_level_imports(SRC / "privacy" / "opacus.py")
    assert not {m for m in opacus if m.split(".")[0] in ("opacus", "dp_accounting", "torch")}, opacus
    assert "fedloom.privacy.accountant" not in opacus and not any(m.startswith("fedloom.torch") for m in opacus)


# -- the vectorized backend asks the trainer -------------------------------------------------------------------------
def _pool_fit(client_fn, config: dict) -> tuple[VectorizedPool, list]:  # noqa: ANN001
    pool = VectorizedPool(client_fn, 2)
    out = pool.fit([(str(i), FitIns(W, {**config, "seed": i})) for i in range(2)], expected=W.spec())
    assert not out.failures
    return pool, out.results


@pytest.mark.parametrize(
    ("trainer", "name"),
    [(ProximalTrainer(0.1), "ProximalTrainer"), (DPSGDTrainer(DPSGD(reproducible_noise=True)), "DPSGDTrainer"),
     (LabelFlipTrainer(), "LabelFlipTrainer"), (ScaffoldTrainer(), "ScaffoldTrainer")],
)
def test_vectorized_falls_back_for_a_trainer_that_is_not_plain_epochs(trainer: LocalTrainer, name: str) -> None:
    client_fn = lambda cid: _client(trainer=trainer, train_data=_data(seed=int(cid)))  # noqa: E731
    assert name in (why_not_vectorizable(client_fn("0")) or "")
    c = Parameters({k: np.zeros_like(v) for k, v in W.items()})
    pool = VectorizedPool(client_fn, 2)
    tasks = [(str(i), FitIns(W, {"seed": i}, {"scaffold_c": c})) for i in range(2)]
    with pytest.warns(VectorizedFallbackWarning, match=name):
        out = pool.fit(tasks, expected=W.spec())
    assert not out.failures and "not plain SGD epochs" in (pool.fallback_reason or "")
    for (cid, ins), (_, res) in zip(tasks, out.results, strict=True):  # inline, exactly as the client itself
        _equal(res.parameters, client_fn(cid).fit_task(ins).parameters)


def test_vectorized_asks_the_default_trainer_per_task() -> None:
    client_fn = lambda cid: _client(train_data=_data(seed=int(cid)))  # noqa: E731
    assert why_not_vectorizable(client_fn("0")) is None
    assert why_not_vectorizable(client_fn("0"), FitIns(W, {"proximal_mu": 0.2})) is not None
    with warnings.catch_warnings():  # FedProx with mu = 0 (and partial work) is plain epochs: vectorized
        warnings.simplefilter("error", VectorizedFallbackWarning)
        pool, results = _pool_fit(client_fn, {"proximal_mu": 0.0, "accept_partial_work": True})
    assert pool.fallback_reason is None and len(results) == 2
    with pytest.warns(VectorizedFallbackWarning, match=r"ProximalTrainer.*AutoTrainer chose it because .*proximal_mu"):
        pool, _ = _pool_fit(client_fn, {"proximal_mu": 0.2})


# -- a user's own trainer ----------------------------------------------------------------------------------------------
class _FullBatchStep:
    """One full-batch gradient step; counts its tasks in the client's state."""

    vectorizable = False

    def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome:
        x, y = ctx.train_data.x, ctx.train_data.y
        ctx.model.zero_grad()
        loss = ctx.loss_fn(ctx.model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in ctx.model.parameters():
                p -= ctx.lr_for(ins.config) * p.grad
        done = int(ctx.state["tasks"]["n"][0]) + 1 if "tasks" in ctx.state else 1
        ctx.state["tasks"] = Parameters({"n": np.array([done])})
        return TrainOutcome(float(loss.detach()), {"tasks": done}, {"echo": Parameters({"n": np.array([done])})})


def test_a_user_trainer_runs_in_torch_client() -> None:
    state: dict = {}
    client = _client(trainer=_FullBatchStep(), state=state)
    res = client.fit_task(FitIns(W, {"lr": 0.5}))
    ref = _mlp()
    x, y = _data()
    loss = nn.functional.cross_entropy(ref(x), y)
    loss.backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= 0.5 * p.grad
    _equal(res.parameters, module_parameters(ref))
    assert res.metrics == {"train_loss": float(loss.detach()), "tasks": 1} and res.extras["echo"]["n"].tolist() == [1]
    assert client.fit(W, {}).metrics["tasks"] == 2 and state["tasks"]["n"].tolist() == [2]
    assert "_FullBatchStep" in (why_not_vectorizable(client) or "")


def test_a_trainer_without_train_is_refused() -> None:
    with pytest.raises(ConfigError, match="train"):
        _client(trainer=object())


def test_train_context_reads_task_overrides() -> None:
    ctx = dataclasses.replace(_client().context(), lr=0.2)
    assert ctx.epochs_for({}) == 2 and ctx.epochs_for({"local_epochs": 5}) == 5
    assert ctx.batch_size_for({"batch_size": 3}) == 3 and ctx.lr_for({}) == 0.2 and ctx.seed_for({"seed": 9}) == 9
