"""Contribution scores: a client holding random labels scores lowest; GTG-Shapley matches exact
Shapley on 4 clients within the stated tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.core import EvaluateRes, FitRes, Parameters
from fedloom.engine import RoundRecord
from fedloom.ledger.contributions import ContributionObserver, RoundGame, exact_shapley, gtg_shapley

DIM = 8
TOLERANCE = 0.15
"""Stated in docs/accountability.md: GTG-Shapley (50 permutations) within 15% of the largest exact value."""


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=DIM)
    data = []
    for cid in range(4):
        x = rng.normal(size=(60, DIM))
        y = x @ w_true + 0.1 * rng.normal(size=60)
        if cid == 3:  # random labels
            y = rng.normal(scale=3.0, size=60)
        data.append((x, y))
    xv = rng.normal(size=(200, DIM))
    yv = xv @ w_true

    def evaluate(params: Parameters) -> EvaluateRes:
        w = params["w"].astype(np.float64)
        return EvaluateRes(float(np.mean((xv @ w - yv) ** 2)), len(yv), {"accuracy": 0.0})

    def train(w: np.ndarray, cid: int) -> Parameters:
        x, y = data[cid]
        w = w.copy()
        for _ in range(5):
            w -= 0.05 * x.T @ (x @ w - y) / len(y)
        return Parameters({"w": w.astype(np.float32)})

    return evaluate, train


def test_a_client_with_random_labels_scores_lowest():
    evaluate, train = _problem()
    obs = ContributionObserver(evaluate, None, metric="loss", seed=0)
    params = Parameters({"w": np.zeros(DIM, np.float32)})
    for rnd in range(1, 4):
        results = [(str(c), FitRes(train(params["w"].astype(np.float64), c), 60)) for c in range(4)]
        obs.on_fit_results(rnd, params, results, [])
        game = RoundGame(params, [r.parameters for _, r in results], [60] * 4, evaluate)
        params = params.unflatten(game.base + np.mean(game.deltas, axis=0))
        obs.on_round_end(RoundRecord(rnd), None)  # type: ignore[arg-type]
    summary = obs.summary()
    assert summary["ranking"][-1] == "3", summary
    assert min(summary["leave_one_out"], key=summary["leave_one_out"].get) == "3"
    assert summary["shapley"]["3"] < 0 < min(summary["shapley"][c] for c in "012")
    assert summary["evaluations"] > 0 and summary["rounds"] == 3


def test_clients_with_duplicated_data_get_equal_scores():
    """Shapley's symmetry: two clients holding the same data have the same value (exact and GTG)."""
    evaluate, train = _problem(1)
    params = Parameters({"w": np.zeros(DIM, np.float32)})
    updates = [train(np.zeros(DIM), c) for c in (0, 0, 1, 3)]  # clients 0 and 1 hold the same data
    game = RoundGame(params, updates, [60] * 4, evaluate)
    exact = exact_shapley(4, game)
    assert exact[0] == pytest.approx(exact[1])
    assert np.argmin(exact) == 3


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_gtg_shapley_matches_exact_shapley_on_four_clients(seed: int):
    evaluate, train = _problem(seed)
    params = Parameters({"w": np.zeros(DIM, np.float32)})
    game = RoundGame(params, [train(np.zeros(DIM), c) for c in range(4)], [60, 40, 80, 60], evaluate)
    exact = exact_shapley(4, game)
    approx = gtg_shapley(4, game, rng=np.random.default_rng(seed))
    assert np.sum(exact) == pytest.approx(game(frozenset(range(4))) - game(frozenset()))  # efficiency
    assert np.max(np.abs(approx - exact)) <= TOLERANCE * np.max(np.abs(exact)), (exact, approx)
    assert np.argmin(approx) == np.argmin(exact) == 3


def test_the_html_report_shows_the_contribution_scores_best_first(tmp_path):
    from fedloom.runs.plots import write_html_report

    summary = {"history": [], "contributions": {
        "metric": "-loss", "method": "leave-one-out and GTG-Shapley", "evaluations": 12, "seconds": 0.5,
        "leave_one_out": {"a": 0.1, "b": -0.2}, "shapley": {"a": 0.3, "b": -0.1}, "ranking": ["a", "b"]}}
    page = write_html_report(summary, [], tmp_path).read_text()
    assert "<h2>Contributions</h2>" in page
    assert page.index("<td>a</td><td>0.3</td><td>0.1</td>") < page.index("<td>b</td><td>-0.1</td><td>-0.2</td>")
    assert "<h2>Contributions</h2>" not in write_html_report({"history": []}, [], tmp_path).read_text()
