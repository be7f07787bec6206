"""Strategy.result_spec: results of a changing layout pass the loop's checks, non-finite ones still fail."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.core.parameters import Parameters
from fedloom.core.types import FitRes
from fedloom.core.validation import check_fit_result
from fedloom.errors import ValidationError


def test_no_spec_accepts_any_layout_but_not_nan() -> None:
    check_fit_result(FitRes(Parameters({"hist": np.zeros((3, 4, 2))}), 5), None)
    with pytest.raises(ValidationError, match="NaN"):
        check_fit_result(FitRes(Parameters({"hist": np.full(3, np.nan)}), 5), None)
    with pytest.raises(ValidationError, match="num_examples"):
        check_fit_result(FitRes(Parameters({"hist": np.zeros(3)}), -1), None)


def test_a_spec_still_rejects_another_layout() -> None:
    spec = Parameters({"w": np.zeros(2)}).spec()
    with pytest.raises(ValidationError, match="wrong names"):
        check_fit_result(FitRes(Parameters({"hist": np.zeros(2)}), 5), spec)
