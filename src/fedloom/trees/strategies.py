"""Federated tree strategies: xgb-bagging, xgb-cyclic (as Flower offers) and xgb-histogram.

* **xgb-bagging**: each round every sampled client adds ``xgb_local_rounds`` trees to the global
  booster on its own data; the server appends all of them, each client's leaf values divided by the
  number of clients of the round (so a round adds the *mean* of the clients' boosting steps; Flower
  adds their sum).
* **xgb-cyclic**: one client a round, in turn (sorted names, round-robin), adds its trees.
* **xgb-histogram**: round 1 sums per-feature sketch counts into global quantile bin edges; every
  later round grows one level of the current tree from the summed gradient histograms of all
  sampled clients (:mod:`fedloom.trees.histogram`), so the model equals XGBoost ``hist`` trained on
  the union with the same bins.

All three keep the whole model in ``state.parameters``; client results have their own layouts, so
:meth:`~fedloom.core.strategy.Strategy.result_spec` is ``None`` and
:meth:`~fedloom.core.strategy.Strategy.aggregate_fit` checks each result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.sampling import sample_uniform
from fedloom.core.strategy import Failure, ServerState, Strategy, too_few_results
from fedloom.core.types import ClientId, EvaluateIns, FitIns, FitRes, Metrics
from fedloom.errors import ValidationError
from fedloom.strategies.fedavg import CentralEvaluateFn
from fedloom.trees import booster as bst
from fedloom.trees import histogram as hg
from fedloom.trees.client import TreeSpec

__all__ = ["TreeStrategy", "XGBBagging", "XGBCyclic", "XGBHistogram", "initial_parameters", "build_bagging",
           "build_cyclic", "build_histogram"]


class TreeStrategy(Strategy):
    """What the three tree strategies share: sampling, federated evaluation, central evaluation."""

    def __init__(self, spec: TreeSpec, *, fraction_fit: float = 1.0, min_fit_clients: int = 1,
                 min_fit_results: int = 1, fraction_evaluate: float = 0.0,
                 evaluate_fn: CentralEvaluateFn | None = None, **_: Any) -> None:
        self.spec = spec
        self.fraction_fit, self.min_fit_clients = fraction_fit, min_fit_clients
        self.min_fit_results, self.fraction_evaluate = max(1, min_fit_results), fraction_evaluate
        self.evaluate_fn = evaluate_fn

    def result_spec(self, state: ServerState, model_spec: ParamSpec) -> ParamSpec | None:
        return None  # new trees, sketches and histograms: checked in aggregate_fit

    def _task(self, state: ServerState, mode: str) -> FitIns:
        return FitIns(state.parameters, {"xgb_mode": mode})

    def configure_fit(self, state: ServerState, rnd: int, clients: Sequence[ClientId]) -> list[tuple[ClientId, FitIns]]:
        chosen = sample_uniform(state.rng, clients, self.fraction_fit, self.min_fit_clients)
        ins = self._task(state, self.mode(state))
        return [(cid, ins) for cid in chosen]

    def mode(self, state: ServerState) -> str:
        return "boost"

    def configure_evaluate(self, state: ServerState, rnd: int, clients: Sequence[ClientId]
                           ) -> list[tuple[ClientId, EvaluateIns]]:
        if self.fraction_evaluate <= 0 or not clients:
            return []
        k = max(1, math.ceil(self.fraction_evaluate * len(clients)))
        chosen = sample_uniform(state.rng, clients, k / len(clients), 1)
        return [(cid, EvaluateIns(state.parameters, {})) for cid in chosen]

    def evaluate(self, state: ServerState, rnd: int) -> Any:
        if self.evaluate_fn is None:
            return None
        from fedloom.core.results import call_evaluate_fn

        return call_evaluate_fn(self.evaluate_fn, rnd, state.parameters)

    def _usable(self, rnd: int, results: Sequence[tuple[ClientId, FitRes]], failures: Sequence[Failure],
                check: Any) -> tuple[list[tuple[ClientId, FitRes]], list[Failure]]:
        good, bad = [], list(failures)
        for cid, res in results:
            try:
                check(res.parameters)
                good.append((cid, res))
            except ValidationError as exc:
                bad.append(Failure(cid, f"invalid tree result: {exc}"))
        if len(good) < self.min_fit_results:
            raise too_few_results(rnd, len(good), self.min_fit_results, bad)
        return good, bad


class XGBBagging(TreeStrategy):
    """Every sampled client adds trees; the server appends them, averaged over the round's clients."""

    def _check(self, params: Parameters) -> dict[str, Any]:
        if list(params) != [bst.BOOSTER] or params[bst.BOOSTER].dtype != np.uint8 or params[bst.BOOSTER].ndim != 1:
            raise ValidationError(f"expected one uint8 array {bst.BOOSTER!r}, got {params!r}")
        model = bst.check_booster_json(params[bst.BOOSTER], num_features=self.spec.num_features,
                                       objective=self.spec.objective, num_classes=self.spec.num_classes)
        per_round = 1 if self.spec.objective != "multi:softprob" else self.spec.num_classes
        if bst.num_trees(model) != self.spec.local_rounds * per_round:
            want = self.spec.local_rounds * per_round
            raise ValidationError(f"expected {want} new trees, got {bst.num_trees(model)}")
        return model

    def aggregate_fit(self, state: ServerState, rnd: int, results: Sequence[tuple[ClientId, FitRes]],
                      failures: Sequence[Failure]) -> Metrics:
        good, bad = self._usable(rnd, results, failures, self._check)
        raw = state.parameters[bst.BOOSTER]
        merged = bst.check_booster_json(raw, num_features=self.spec.num_features, objective=self.spec.objective,
                                        num_classes=self.spec.num_classes) if raw.size else None
        scale = 1.0 / len(good)
        for _, res in sorted(good, key=lambda item: item[0]):  # a fixed order: the same model on every backend
            merged = bst.append_trees(merged, self._check(res.parameters), scale=scale)
        assert merged is not None
        state.parameters = Parameters({bst.BOOSTER: bst.to_array(merged)})
        return {"trees": float(bst.num_trees(merged)), "fit_clients": float(len(good)), "fit_failures": float(len(bad))}


class XGBCyclic(XGBBagging):
    """One client a round, in turn over the sorted client names, adds its trees to the global booster."""

    def configure_fit(self, state: ServerState, rnd: int, clients: Sequence[ClientId]) -> list[tuple[ClientId, FitIns]]:
        order = sorted(clients, key=lambda c: (len(c), c))
        if not order:
            return []
        return [(order[(rnd - 1) % len(order)], self._task(state, "boost"))]


class XGBHistogram(TreeStrategy):
    """Histogram-based training whose trees equal XGBoost ``hist`` on the pooled data (same bins)."""

    def mode(self, state: ServerState) -> str:
        return "sketch" if int(state.parameters["cursor"][0]) == 0 else "hist"

    def aggregate_fit(self, state: ServerState, rnd: int, results: Sequence[tuple[ClientId, FitRes]],
                      failures: Sequence[Failure]) -> Metrics:
        p, model = self.spec.params, state.parameters
        if self.mode(state) == "sketch":
            shape: tuple[int, ...] = (self.spec.num_features, hg.SKETCH_CELLS + 2)
            good, bad = self._usable(rnd, results, failures, lambda r: _check_sum(r, "sketch", shape))
            counts = np.sum([res.parameters["sketch"] for _, res in good], axis=0)
            arrays = dict(model.items())
            arrays["bin_edges"] = hg.edges_from_sketch(counts, p.bins)
            arrays["cursor"] = np.array([1, 0, 0], dtype=np.int64)
            state.parameters = Parameters(arrays)
            return {"fit_clients": float(len(good)), "fit_failures": float(len(bad))}
        shape = (len(hg.open_nodes(model)), self.spec.num_features, p.bins, 2)
        good, bad = self._usable(rnd, results, failures, lambda r: _check_sum(r, "hist", shape))
        total = np.sum([res.parameters["hist"] for _, res in good], axis=0)  # only sums: SecAgg could add them
        state.parameters = hg.grow_level(model, total, p)
        return {"trees": float(hg.finished_trees(state.parameters)), "fit_clients": float(len(good)),
                "fit_failures": float(len(bad))}


MAX_SUM_VALUE = 1e100
"""Largest magnitude of a sketch count or histogram entry from one client: far beyond any real data, and
small enough that the sum over any number of clients, and its square in the gain, stays finite."""


def _check_sum(params: Parameters, name: str, shape: tuple[int, ...]) -> None:
    if list(params) != [name] or params[name].shape != shape:
        raise ValidationError(f"expected one array {name!r} of shape {shape}, got {params!r}")
    arr = params[name]
    if not np.isfinite(arr).all():
        raise ValidationError(f"{name!r} holds NaN or infinite values")
    if (np.abs(arr.astype(np.float64)) > MAX_SUM_VALUE).any():  # finite, but a sum could overflow to inf
        raise ValidationError(f"{name!r} holds values beyond {MAX_SUM_VALUE:g}")
    counts = arr if name == "sketch" else arr[..., 1]  # counts and hessians are never negative
    if (counts < 0).any():
        raise ValidationError(f"{name!r} holds negative {'counts' if name == 'sketch' else 'hessians'}")


def initial_parameters(strategy: str, spec: TreeSpec) -> Parameters:
    """The first global model of a tree strategy: an empty booster, or an empty histogram tree ensemble."""
    if strategy == "xgb-histogram":
        return hg.initial_model(spec.num_features, spec.params)
    return Parameters({bst.BOOSTER: bst.empty_booster()})


def _probe_spec() -> TreeSpec:
    return TreeSpec("classification", 1, 2, hg.TreeParams())


def build_bagging(options: Any, common: dict) -> XGBBagging:
    """STRATEGIES builder of xgb-bagging (``common["tree_spec"]`` from the app; a probe spec otherwise)."""
    return XGBBagging(common.get("tree_spec") or _probe_spec(), **_kwargs(common))


def build_cyclic(options: Any, common: dict) -> XGBCyclic:
    """STRATEGIES builder of xgb-cyclic."""
    return XGBCyclic(common.get("tree_spec") or _probe_spec(), **_kwargs(common))


def build_histogram(options: Any, common: dict) -> XGBHistogram:
    """STRATEGIES builder of xgb-histogram."""
    return XGBHistogram(common.get("tree_spec") or _probe_spec(), **_kwargs(common))


def _kwargs(common: dict) -> dict:
    keys = ("fraction_fit", "min_fit_clients", "min_fit_results", "fraction_evaluate", "evaluate_fn")
    return {k: common[k] for k in keys if k in common}
