"""The vectorized backend trains a cohort at once and matches sequential (inline) training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedloom import FedAvg, TorchClient, simulate
from fedloom.backends.vectorized import VectorizedFallbackWarning, VectorizedPool, why_not_vectorizable
from fedloom.core.types import FitIns
from fedloom.torch import module_parameters

SIZES = [5, 13, 16, 1, 33, 7]  # unequal: partial last batches, one client with a single row


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))


def _client_fn(model_fn=_mlp, cls=TorchClient, **kwargs):  # noqa: ANN001, ANN202
    def client_fn(cid: str) -> TorchClient:
        return cls(model_fn=model_fn, train_data=_data(SIZES[int(cid)], int(cid)), batch_size=4, lr=0.1, **kwargs)

    return client_fn


def _run(backend: str, client_fn, rounds: int = 3, epochs: int = 2):  # noqa: ANN001, ANN202
    strategy = FedAvg(fit_config={"local_epochs": epochs}, fraction_fit=1.0)
    return simulate(client_fn, num_clients=len(SIZES), strategy=strategy, rounds=rounds, backend=backend, seed=3)


def test_vectorized_matches_inline_with_unequal_client_sizes() -> None:
    inline = _run("inline", _client_fn())
    vectorized = _run("vectorized", _client_fn())
    a, b = inline.parameters.flatten(), vectorized.parameters.flatten()
    assert np.abs(a - module_parameters(_mlp()).flatten()).max() > 1e-2  # training moved the model
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    for r_in, r_vec in zip(inline.history, vectorized.history, strict=True):
        assert r_vec.metrics["train_loss"] == pytest.approx(r_in.metrics["train_loss"], rel=1e-5)


def test_one_cohort_task_equals_one_sequential_fit() -> None:
    """Per client, not just after averaging: each FitRes equals that client's own fit."""
    client_fn = _client_fn()
    params = module_parameters(_mlp())
    tasks = [(str(i), FitIns(params, {"seed": 10 + i, "local_epochs": 1 + i % 2, "lr": 0.05 * (1 + i)}))
             for i in range(len(SIZES))]
    out = VectorizedPool(client_fn, len(SIZES)).fit(tasks, expected=params.spec())
    assert [cid for cid, _ in out.results] == [str(i) for i in range(len(SIZES))]
    for (cid, ins), (_, res) in zip(tasks, out.results, strict=True):
        want = client_fn(cid).fit(params, ins.config)
        assert res.num_examples == want.num_examples == SIZES[int(cid)]
        np.testing.assert_allclose(res.parameters.flatten(), want.parameters.flatten(), rtol=1e-5, atol=1e-6)
        assert res.metrics["train_loss"] == pytest.approx(want.metrics["train_loss"], rel=1e-5)


def _bn_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 3))


class _Subclass(TorchClient):
    pass


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"model_fn": _bn_mlp}, "BatchNorm"),
        ({"cls": _Subclass}, "not a plain TorchClient"),
        ({"optimizer_fn": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)}, "not plain SGD"),
        ({"loss_fn": lambda o, t: nn.functional.cross_entropy(o, t)}, "loss function"),
    ],
)
def test_falls_back_to_inline_with_a_clear_message(kwargs: dict, reason: str) -> None:
    assert reason in (why_not_vectorizable(_client_fn(**kwargs)("0")) or "")
    with pytest.warns(VectorizedFallbackWarning, match=reason):
        vectorized = _run("vectorized", _client_fn(**kwargs), rounds=2, epochs=1)
    inline = _run("inline", _client_fn(**kwargs), rounds=2, epochs=1)
    np.testing.assert_array_equal(vectorized.parameters.flatten(), inline.parameters.flatten())


def test_unknown_task_keys_fall_back() -> None:
    """A strategy that sends keys the vectorized trainer does not implement (e.g. a proximal term
    read by a future TorchClient) must not be silently ignored."""
    params = module_parameters(_mlp())
    pool = VectorizedPool(_client_fn(), len(SIZES))
    with pytest.warns(VectorizedFallbackWarning, match="proximal_mu"):
        out = pool.fit([("0", FitIns(params, {"seed": 1, "proximal_mu": 0.1}))], expected=params.spec())
    assert len(out.results) == 1 and "proximal_mu" in (pool.fallback_reason or "")
