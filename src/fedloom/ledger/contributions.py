"""Per-client contribution scores from data the server already has: each round's updates and its
central validation set.

The utility of a coalition ``S`` in round ``t`` is the validation quality (``-loss`` or accuracy)
of the previous global model moved by the example-weighted mean of the updates of ``S`` (FedAvg
with a unit server step; ``U(empty)`` is the previous model). Per round:

- **leave-one-out**: ``U(N) - U(N \\ {i})``;
- **GTG-Shapley** (Liu, Xu, Cheng, Low, Yang, "GTG-Shapley: Efficient and Accurate Participant
  Contribution Evaluation in Federated Learning", ACM TIST 2022): Monte Carlo permutations of the
  round's clients, guided so that each client leads equally often, truncated within a permutation
  once the coalition's utility is within ``tolerance`` of ``U(N)``, and a round whose total gain is
  below ``tolerance`` skipped; stops after ``permutations`` permutations or when the estimates
  move less than ``tolerance`` (relative) over a full cycle;
- **exact Shapley** (:func:`exact_shapley`, all ``2^n`` coalitions; for tests and small cohorts).

A client's score is the sum of its per-round values (0 in rounds it did not take part in). Every
coalition costs one evaluation on the validation set, cached within a round; the cost is counted.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.core.strategy import Failure, ServerState
from fedloom.core.types import ClientId, EvaluateRes, FitRes

__all__ = ["CONTRIBUTIONS_FILE", "ContributionObserver", "RoundGame", "exact_shapley", "gtg_shapley",
           "leave_one_out", "contributions_summary"]

CONTRIBUTIONS_FILE = "contributions.json"
Utility = Callable[[frozenset[int]], float]


class RoundGame:
    """The coalition game of one round: ``U(S)`` for subsets of the round's clients (cached)."""

    def __init__(self, previous: Parameters, updates: Sequence[Parameters], weights: Sequence[float],
                 evaluate: Callable[[Parameters], EvaluateRes], metric: str = "loss") -> None:
        self.previous = previous
        base = previous.flatten()
        self.base = base
        self.deltas = np.stack([u.flatten() - base for u in updates]) if updates else np.zeros((0, base.size))
        self.weights = np.asarray(weights, dtype=np.float64)
        self.evaluate = evaluate
        self.metric = metric
        self.cache: dict[frozenset[int], float] = {}
        self.evaluations = 0

    @property
    def n(self) -> int:
        return len(self.deltas)

    def __call__(self, coalition: frozenset[int]) -> float:
        if coalition not in self.cache:
            vec = self.base
            if coalition:
                idx = sorted(coalition)
                w = self.weights[idx]
                vec = self.base + (w / w.sum()) @ self.deltas[idx]
            res = self.evaluate(self.previous.unflatten(vec))
            self.evaluations += 1
            value = float(res.metrics["accuracy"]) if self.metric == "accuracy" else -float(res.loss)
            self.cache[coalition] = value if math.isfinite(value) else -1e30
        return self.cache[coalition]


def leave_one_out(n: int, utility: Utility) -> np.ndarray:
    """``U(N) - U(N \\ {i})`` for each of ``n`` players."""
    full = frozenset(range(n))
    return np.array([utility(full) - utility(full - {i}) for i in range(n)])


def exact_shapley(n: int, utility: Utility) -> np.ndarray:
    """Exact Shapley values over all ``2^n`` coalitions."""
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                values[i] += weight * (utility(s | {i}) - utility(s))
    return values


def gtg_shapley(n: int, utility: Utility, *, permutations: int = 0, tolerance: float = 1e-3,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """GTG-Shapley estimate of the Shapley values of ``n`` players (see the module docstring).

    Args:
        n: Players.
        utility: ``U`` over coalitions (frozensets of player indices).
        permutations: Most permutations to sample (0: ``max(50, 4 n)``).
        tolerance: Truncation threshold on utility differences, and the convergence criterion.
        rng: Source of the permutations.
    """
    rng = rng or np.random.default_rng(0)
    full, empty = frozenset(range(n)), frozenset[int]()
    if n == 0:
        return np.zeros(0)
    u_full, u_empty = utility(full), utility(empty)
    if abs(u_full - u_empty) < tolerance:  # between-round truncation: the round changed nothing measurable
        return np.zeros(n)
    limit = permutations or max(50, 4 * n)
    total = np.zeros(n)
    last = np.zeros(n)
    for k in range(1, limit + 1):
        lead = (k - 1) % n  # guided sampling: every player leads a permutation in turn
        rest = [j for j in rng.permutation(n) if j != lead]
        order = [lead, *rest]
        prefix: frozenset[int] = empty
        v_prev = u_empty
        for j in order:
            if abs(u_full - v_prev) < tolerance:  # within-round truncation: the rest add nothing
                break
            prefix = prefix | {j}
            v = utility(prefix)
            total[j] += v - v_prev
            v_prev = v
        estimate = total / k
        if k % n == 0 and k >= 2 * n:
            scale = max(np.abs(estimate).max(), 1e-12)
            if np.abs(estimate - last).max() / scale < tolerance:
                return estimate
            last = estimate.copy()
    return total / limit


class ContributionObserver:
    """Score each client's contribution round by round; writes ``contributions.json`` in ``run_dir``.

    Args:
        evaluate: The server's central evaluation (its held-out data).
        run_dir: Where ``contributions.json`` goes (``None``: kept in memory only).
        metric: ``"loss"`` (utility ``-loss``) or ``"accuracy"``.
        permutations: GTG-Shapley's most permutations per round (0: ``max(50, 4 n)``).
        tolerance: GTG-Shapley's truncation and convergence threshold.
        seed: Seed of the permutations.
    """

    def __init__(self, evaluate: Callable[[Parameters], EvaluateRes], run_dir: str | Path | None = None, *,
                 metric: str = "loss", permutations: int = 0, tolerance: float = 1e-3, seed: int = 0) -> None:
        self.evaluate = evaluate
        self.path = Path(run_dir) / CONTRIBUTIONS_FILE if run_dir is not None else None
        self.metric = metric
        self.permutations = permutations
        self.tolerance = tolerance
        self.rng = np.random.default_rng(seed)
        self.loo: dict[ClientId, float] = {}
        self.shapley: dict[ClientId, float] = {}
        self.evaluations = 0
        self.seconds = 0.0
        self.rounds = 0
        self._pending: dict[int, tuple[Parameters, list[tuple[ClientId, FitRes]]]] = {}

    def on_fit_results(self, rnd: int, previous: Parameters, results: Sequence[tuple[ClientId, FitRes]],
                       failures: Sequence[Failure]) -> None:
        """Keep the round's validated updates until the round completes."""
        self._pending = {rnd: (previous, list(results))}

    def on_round_end(self, record: Any, state: ServerState) -> None:
        """Score the completed round and add it to the totals."""
        pending = self._pending.pop(record.round, None)
        if pending is None or not pending[1]:
            return
        start = time.perf_counter()
        previous, results = pending
        game = RoundGame(previous, [r.parameters for _, r in results], [r.num_examples for _, r in results],
                         self.evaluate, self.metric)
        loo = leave_one_out(game.n, game)
        shap = gtg_shapley(game.n, game, permutations=self.permutations, tolerance=self.tolerance, rng=self.rng)
        for (cid, _), lv, sv in zip(results, loo, shap, strict=True):
            self.loo[cid] = self.loo.get(cid, 0.0) + float(lv)
            self.shapley[cid] = self.shapley.get(cid, 0.0) + float(sv)
        self.evaluations += game.evaluations
        self.seconds += time.perf_counter() - start
        self.rounds += 1
        if self.path is not None:
            self.path.write_text(json.dumps(self.summary(), indent=1))

    def summary(self) -> dict[str, Any]:
        """The scores and their cost (what ``summary.json`` reports under ``contributions``)."""
        order = sorted(self.shapley, key=lambda c: (len(c), c))
        return {
            "metric": f"-{self.metric}" if self.metric == "loss" else self.metric,
            "method": "leave-one-out and GTG-Shapley per round, summed over rounds",
            "leave_one_out": {c: self.loo[c] for c in order},
            "shapley": {c: self.shapley[c] for c in order},
            "ranking": sorted(order, key=lambda c: -self.shapley[c]),
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "rounds": self.rounds,
        }


def contributions_summary(run_dir: str | Path) -> dict[str, Any]:
    """``{"contributions": {...}}`` for ``summary.json`` from ``RUN_DIR/contributions.json`` (empty without)."""
    path = Path(run_dir) / CONTRIBUTIONS_FILE
    return {"contributions": json.loads(path.read_text())} if path.exists() else {}
