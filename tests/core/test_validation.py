import numpy as np
import pytest

from fedloom.core import FitRes, Parameters, check_fit_result, check_update
from fedloom.errors import ValidationError

GLOBAL = Parameters({"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)})


def test_valid_update_passes():
    check_update(GLOBAL.copy(), GLOBAL.spec())


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"w": np.zeros((2, 2), np.float32)}, "missing"),
        ({"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32), "x": np.zeros(1)}, "unexpected"),
        ({"b": np.zeros(2, np.float32), "w": np.zeros((2, 2), np.float32)}, "order"),
        ({"w": np.zeros((2, 3), np.float32), "b": np.zeros(2, np.float32)}, "shape"),
        ({"w": np.zeros((2, 2), np.float64), "b": np.zeros(2, np.float32)}, "dtype"),
        ({"w": np.full((2, 2), np.nan, np.float32), "b": np.zeros(2, np.float32)}, "NaN"),
        ({"w": np.zeros((2, 2), np.float32), "b": np.array([np.inf, 0], np.float32)}, "infinite"),
    ],
)
def test_bad_updates_are_rejected_with_reason(update, message):
    with pytest.raises(ValidationError, match=message):
        check_update(Parameters(update), GLOBAL.spec())


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_bad_example_counts(bad):
    with pytest.raises(ValidationError, match="num_examples"):
        check_fit_result(FitRes(GLOBAL, bad), GLOBAL.spec())


def test_wrong_result_type():
    with pytest.raises(ValidationError, match="FitRes"):
        check_fit_result({"w": 1}, GLOBAL.spec())


def test_evaluate_results_need_a_finite_loss_a_count_and_finite_metrics() -> None:
    from fedloom.core import EvaluateRes, check_evaluate_result

    check_evaluate_result(EvaluateRes(np.float32(0.5), 3, {"accuracy": np.float64(1.0), "name": "x", "ok": True}))
    for bad, message in [(EvaluateRes(float("nan"), 3), "loss must be a finite number"),
                         (EvaluateRes(0.5, -1), "num_examples must be a non-negative int"),
                         (EvaluateRes(0.5, 3, {"f1": float("inf")}), "metric 'f1' is not finite"),
                         (EvaluateRes(0.5, 3, {"accuracy": 2.0}), r"'accuracy' must be a number in \[0, 1\]"),
                         ("not a result", "evaluate must return EvaluateRes")]:
        with pytest.raises(ValidationError, match=message):
            check_evaluate_result(bad)
