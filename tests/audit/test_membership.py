"""Membership inference: chance on a model that never saw the members, far above chance on one that overfit them."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.audit.membership import lira_scores, roc, train_shadows
from fedloom.audit.suite import membership_suite, predictor, train_model
from fedloom.data.datasets import load_dataset
from fedloom.models import build_model


def _model_fn():
    return build_model("mlp", num_features=64, num_outputs=10, hidden=64)


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits", seed=0)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def test_roc_by_hand():
    perfect = roc(np.array([3.0, 4.0]), np.array([1.0, 2.0]))
    assert perfect.auc == 1.0 and perfect.tpr_at[0.001] == 1.0
    assert roc(np.array([1.0, 2.0]), np.array([3.0, 4.0])).auc == 0.0
    tied = roc(np.array([1.0]), np.array([1.0]))
    assert tied.auc == 0.5
    half = roc(np.array([4.0, 1.0]), np.array([3.0, 2.0]))  # pairs won: (4>3, 4>2) of 4
    assert half.auc == 0.5 and half.tpr_at[0.1] == 0.5


def test_auc_is_about_half_on_a_model_that_never_saw_the_members(digits):
    x, y, xt, yt = digits
    model = train_model(_model_fn, x[:700], y[:700], epochs=30, lr=0.1)
    curves = membership_suite(predictor(model), (x[700:1060], y[700:1060]), (xt, yt), seed=0)
    auc = curves["loss threshold"].auc
    assert abs(auc - 0.5) < 0.07


def test_auc_is_high_on_a_model_that_overfit_its_members(digits):
    x, y, xt, yt = digits
    model = train_model(_model_fn, x[:300], y[:300], epochs=60, lr=0.1)
    curves = membership_suite(predictor(model), (x[:300], y[:300]), (xt, yt), seed=0)
    assert curves["loss threshold"].auc > 0.65


def test_lira_separates_members_with_few_shadows(digits):
    x, y, xt, yt = digits
    pool_x, pool_y = np.concatenate([x[:200], xt[:200]]), np.concatenate([y[:200], yt[:200]])

    def recipe(a, b, seed):
        return predictor(train_model(_model_fn, a, b, epochs=40, lr=0.1, seed=seed))

    target = recipe(x[:200], y[:200], 99)  # members: the first 200 rows of the pool
    inside, conf = train_shadows(recipe, pool_x, pool_y, shadows=6, seed=1)
    probs = target(pool_x)[np.arange(400), pool_y]
    scores = lira_scores(probs, inside, conf)
    assert roc(scores[:200], scores[200:]).auc > 0.65
