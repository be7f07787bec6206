"""Gradient inversion: exact on one unprotected example, useless on the SecAgg sum of many clients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedloom.audit.inversion import attack_update, closed_form_linear, infer_labels
from fedloom.audit.protections import observe
from fedloom.audit.quality import label_recovery, psnr, ssim
from fedloom.data.datasets import load_dataset
from fedloom.errors import ConfigError
from fedloom.models import build_model
from fedloom.torch.params import module_parameters


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _model_fn(name: str):
    return lambda: build_model(name, num_features=64, num_outputs=10, image_shape=(1, 8, 8), hidden=32)


def _cohort(ds, start: int, n: int):
    return [(ds.x_train[i:i + 1], ds.y_train[i:i + 1]) for i in range(start, start + n)]


def test_closed_form_recovers_one_example_exactly_from_an_unprotected_linear_update(digits):
    torch.manual_seed(0)
    model_fn = _model_fn("linear")
    params = module_parameters(model_fn())
    for i in range(5):
        obs = observe("none", model_fn=model_fn, parameters=params, cohort=_cohort(digits, i, 1), lr=0.1)
        rec = attack_update(model_fn(), dict(params.items()), obs.update, method="closed_form")
        assert np.max(np.abs(rec.inputs[0] - digits.x_train[i])) < 1e-3  # float32 training, exact up to rounding
        assert psnr(digits.x_train[i], rec.inputs[0]) > 60
        assert ssim(digits.x_train[i], rec.inputs[0], (8, 8)) > 0.999
        assert rec.labels[0] == digits.y_train[i]


def test_closed_form_fails_on_the_secagg_sum_of_many_clients(digits):
    torch.manual_seed(0)
    model_fn = _model_fn("linear")
    params = module_parameters(model_fn())
    cohort = _cohort(digits, 0, 20)
    obs = observe("secagg", model_fn=model_fn, parameters=params, cohort=cohort, lr=0.1)
    assert obs.clients == 20
    rec = attack_update(model_fn(), dict(params.items()), obs.update, method="closed_form")
    best = max(psnr(x[0], rec.inputs[0]) for x, _ in cohort)  # not even close to ANY client's example
    assert best < 20
    corr = max(abs(np.corrcoef(x[0], rec.inputs[0])[0, 1]) for x, _ in cohort)
    assert corr < 0.8


def test_closed_form_reads_the_first_layer_of_an_mlp_and_ig_inverts_it_too(digits):
    torch.manual_seed(0)
    model_fn = _model_fn("mlp")
    params = module_parameters(model_fn())
    obs = observe("none", model_fn=model_fn, parameters=params, cohort=_cohort(digits, 3, 1), lr=0.1)
    exact = attack_update(model_fn(), dict(params.items()), obs.update, method="closed_form")
    assert psnr(digits.x_train[3], exact.inputs[0]) > 60 and exact.labels[0] == digits.y_train[3]
    ig = attack_update(model_fn(), dict(params.items()), obs.update, method="ig", iterations=200,
                       image_shape=(1, 8, 8))
    assert ig.labels[0] == digits.y_train[3]
    assert psnr(digits.x_train[3], ig.inputs[0]) > 25  # a random guess scores about 12 dB


def test_noise_defeats_the_closed_form(digits):
    torch.manual_seed(0)
    model_fn = _model_fn("linear")
    params = module_parameters(model_fn())
    for protection in ("local_dp", "dp_sgd"):
        obs = observe(protection, model_fn=model_fn, parameters=params, cohort=_cohort(digits, 0, 1), lr=0.1,
                      noise_multiplier=1.0, clip=1.0)
        rec = attack_update(model_fn(), dict(params.items()), obs.update, method="closed_form")
        assert psnr(digits.x_train[0], rec.inputs[0]) < 20, protection


def test_closed_form_on_a_batch_is_a_mixture_and_a_zero_bias_is_a_clear_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5))
    g = np.array([[0.3, -0.5], [0.2, 0.4]])  # per-example output gradients (out=2)
    rec = closed_form_linear(g.T @ x / 2, g.sum(0) / 2)
    assert not np.allclose(rec.inputs[0], x[0]) and not np.allclose(rec.inputs[0], x[1])
    with pytest.raises(ConfigError, match="bias gradient is zero"):
        closed_form_linear(np.zeros((2, 5)), np.zeros(2))


def test_labels_from_the_last_bias_and_label_recovery_as_multisets():
    assert infer_labels(np.array([0.1, -0.4, 0.2, -0.3]), 2).tolist() == [1, 3]
    assert infer_labels(np.array([0.1, -0.4, 0.2]), 3).tolist() == [1, 1, 1]
    assert label_recovery(np.array([1, 1, 2]), np.array([2, 1, 0])) == pytest.approx(2 / 3)


def test_dlg_matches_the_gradient_of_a_linear_model(digits):
    torch.manual_seed(0)
    model_fn = _model_fn("linear")
    params = module_parameters(model_fn())
    obs = observe("none", model_fn=model_fn, parameters=params, cohort=_cohort(digits, 7, 1), lr=0.1)
    rec = attack_update(model_fn(), dict(params.items()), obs.update, method="dlg", lr=0.1, iterations=100)
    assert rec.labels[0] == digits.y_train[7]
    assert psnr(digits.x_train[7], rec.inputs[0]) > 30
