import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedloom import TorchClient
from fedloom.models import build_model


def blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 5, generator=g) + 2.0 * y[:, None].float()
    return x, y


def test_fit_learns_and_reports_examples():
    x, y = blobs()
    client = TorchClient(model_fn=lambda: nn.Linear(5, 2), train_data=(x, y), test_data=(x, y), lr=0.1)
    start = client.get_parameters({})
    before = client.evaluate(start, {})
    res = client.fit(start, {"local_epochs": 10, "seed": 1})
    after = client.evaluate(res.parameters, {})
    assert res.num_examples == 200 and after.loss < before.loss and after.metrics["accuracy"] > 0.93


def test_same_seed_same_result_and_config_overrides():
    x, y = blobs()
    torch.manual_seed(0)
    client = TorchClient(model_fn=lambda: nn.Linear(5, 2), train_data=(x, y))
    p0 = client.get_parameters({})
    a = client.fit(p0, {"seed": 3, "lr": 0.5})
    b = client.fit(p0, {"seed": 3, "lr": 0.5})
    c = client.fit(p0, {"seed": 3, "lr": 0.01})
    np.testing.assert_array_equal(a.parameters["weight"], b.parameters["weight"])
    assert not np.allclose(a.parameters["weight"], c.parameters["weight"])


def test_accepts_dataloader_and_regression():
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    client = TorchClient(model_fn=lambda: nn.Linear(3, 1), train_data=loader, task="regression", lr=0.1)
    p = client.get_parameters({})
    for r in range(30):
        p = client.fit(p, {"seed": r}).parameters
    assert client.evaluate(p, {}).loss < 1e-3


def test_user_model_by_import_path():
    net = build_model("torch.nn:Identity")
    assert isinstance(net, nn.Identity)
    cnn = build_model("cnn", num_features=784, num_outputs=10, image_shape=(1, 28, 28))
    assert cnn(torch.zeros(2, 784)).shape == (2, 10)
