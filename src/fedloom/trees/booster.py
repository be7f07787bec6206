"""XGBoost boosters as bytes on the wire: JSON in a uint8 array, validated before it is loaded, never pickled.

A booster travels as its ``save_raw("json")`` bytes in a one-dimensional ``uint8`` array (the
parameter ``booster``; empty before the first tree). What a peer sends is parsed with the standard
:mod:`json` module and checked against the model spec (:func:`check_booster_json`) before XGBoost
sees it, and merged at the JSON level (:func:`append_trees`), so the server never runs XGBoost on
unvalidated input and never unpickles anything.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from fedloom.errors import ConfigError, ValidationError

__all__ = ["xgboost_module", "BOOSTER", "MAX_BOOSTER_BYTES", "booster_bytes", "check_booster_json", "append_trees",
           "load_booster", "num_trees", "xgb_params", "empty_booster", "to_array"]

BOOSTER = "booster"
"""The parameter name of a booster's JSON bytes."""

MAX_BOOSTER_BYTES = 256 * 2**20
"""A booster larger than this is refused (256 MiB)."""

_TREE_ARRAYS = ("left_children", "right_children", "split_indices", "split_conditions", "base_weights",
                "default_left", "parents", "loss_changes", "sum_hessian", "split_type")
"""Per-node arrays: XGBoost refuses a tree whose arrays are not all ``num_nodes`` long."""


def xgboost_module() -> Any:
    """``import xgboost``, or a :class:`ConfigError` saying how to install it."""
    try:
        import xgboost
    except ImportError as exc:
        raise ConfigError("xgb-bagging and xgb-cyclic need XGBoost: pip install 'fedloom[xgboost]' (the xgboost-cpu "
                          "wheel); xgb-histogram runs without it") from exc
    return xgboost


def empty_booster() -> np.ndarray:
    """The model before any tree: zero bytes."""
    return np.zeros(0, dtype=np.uint8)


def booster_bytes(booster: Any) -> np.ndarray:
    """A booster's JSON as a uint8 array."""
    return np.frombuffer(bytes(booster.save_raw("json")), dtype=np.uint8).copy()


def xgb_params(*, objective: str, num_classes: int, eta: float, max_depth: int, reg_lambda: float, gamma: float,
               min_child_weight: float, seed: int = 0) -> dict[str, Any]:
    """The XGBoost training parameters every party uses (fixed base score, exact hist settings)."""
    params: dict[str, Any] = {"objective": objective, "tree_method": "hist", "eta": eta, "max_depth": max_depth,
                              "lambda": reg_lambda, "gamma": gamma, "min_child_weight": min_child_weight,
                              "base_score": 0.5 if objective == "binary:logistic" else 0.0, "nthread": 1,
                              "seed": seed, "verbosity": 0}
    if objective == "multi:softprob":
        params["num_class"] = num_classes
        params["base_score"] = 1.0 / num_classes
    return params


def check_booster_json(raw: np.ndarray | bytes, *, num_features: int, objective: str,
                       num_classes: int | None = None) -> dict[str, Any]:
    """Parse and check a booster's JSON from a peer; return it.

    Checks: size, UTF-8 JSON object, the objective and feature count of the model spec, and for every
    tree: equal-length node arrays, child indices inside the tree (and no node its own child), split
    features below ``num_features``, finite split conditions and weights, numerical splits only, and
    every tree's output group (``tree_info``) below the model's (one, or ``num_class`` for
    ``multi:softprob``, which must equal ``num_classes`` when given): XGBoost itself loads an
    out-of-range group and then corrupts its memory.

    Raises:
        ValidationError: naming what is wrong.
    """
    data = bytes(raw)
    if len(data) > MAX_BOOSTER_BYTES:
        raise ValidationError(f"booster of {len(data)} bytes exceeds the {MAX_BOOSTER_BYTES}-byte limit")
    try:
        model = json.loads(data.decode("utf-8"))
        learner = model["learner"]
        objective_got = learner["objective"]["name"]
        features = int(learner["learner_model_param"]["num_feature"])
        num_class = int(learner["learner_model_param"].get("num_class", 0))
        trees = learner["gradient_booster"]["model"]["trees"]
        info = learner["gradient_booster"]["model"]["tree_info"]
        indptr = learner["gradient_booster"]["model"].get("iteration_indptr")
        tree_param = learner["gradient_booster"]["model"]["gbtree_model_param"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError,
            RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
        raise ValidationError(f"booster is not an XGBoost JSON model: {type(exc).__name__}: {exc}") from exc
    if objective_got != objective:
        raise ValidationError(f"booster objective {objective_got!r} != the model spec's {objective!r}")
    if features != num_features:
        raise ValidationError(f"booster has {features} features, the model spec {num_features}")
    if not isinstance(trees, list) or not isinstance(info, list) or len(trees) != len(info):
        raise ValidationError("booster trees and tree_info disagree")
    if objective == "multi:softprob" and num_classes is not None and num_class != num_classes:
        raise ValidationError(f"booster has {num_class} classes, the model spec {num_classes}")
    groups = max(1, num_class) if objective == "multi:softprob" else 1
    if not isinstance(tree_param, dict) or not all(type(k) is int and 0 <= k < groups for k in info):
        raise ValidationError(f"booster gbtree_model_param or tree_info is malformed (output groups: {groups})")
    if indptr is not None and not (isinstance(indptr, list) and indptr and indptr[0] == 0
                                   and all(type(i) is int for i in indptr) and indptr[-1] == len(trees)
                                   and all(a <= b for a, b in zip(indptr[:-1], indptr[1:], strict=True))):
        raise ValidationError("booster iteration_indptr does not index its trees")
    for i, tree in enumerate(trees):
        _check_tree(tree, i, num_features)
    return model  # type: ignore[no-any-return]


def _check_tree(tree: Any, index: int, num_features: int) -> None:
    where = f"booster tree {index}"
    if not isinstance(tree, dict) or any(not isinstance(tree.get(k), list) for k in _TREE_ARRAYS):
        raise ValidationError(f"{where}: missing node arrays")
    n = len(tree["left_children"])
    if n == 0 or any(len(tree[k]) != n for k in _TREE_ARRAYS):
        raise ValidationError(f"{where}: node arrays of different lengths")
    param = tree.get("tree_param")
    if not isinstance(param, dict) or param.get("num_nodes") != str(n):
        raise ValidationError(f"{where}: tree_param.num_nodes is not the {n} nodes of its arrays")
    if any(t != 0 for t in tree["split_type"]):
        raise ValidationError(f"{where}: categorical splits are not used here")
    for key in ("left_children", "right_children"):
        for node, child in enumerate(tree[key]):
            if type(child) is not int or not (child == -1 or node < child < n):
                raise ValidationError(f"{where}: node {node} has invalid {key[:-9]} child {child!r}")
    for node, feature in enumerate(tree["split_indices"]):
        if type(feature) is not int or not 0 <= feature < num_features:
            raise ValidationError(f"{where}: node {node} splits on feature {feature!r} of {num_features}")
    for key in ("split_conditions", "base_weights"):
        # type(): no bools; abs() <= max: an int too large for a float would raise OverflowError later
        if not all(type(v) in (int, float) and abs(v) <= sys.float_info.max for v in tree[key]):
            raise ValidationError(f"{where}: non-finite {key}")


def num_trees(model: dict[str, Any]) -> int:
    """Trees in a parsed booster JSON."""
    return len(model["learner"]["gradient_booster"]["model"]["trees"])


def append_trees(base: dict[str, Any] | None, new: dict[str, Any], *, scale: float = 1.0) -> dict[str, Any]:
    """``base`` with ``new``'s trees appended (leaf values times ``scale``); ``base=None``: ``new`` scaled.

    Tree ids, ``tree_info``, ``num_trees`` and ``iteration_indptr`` are renumbered so XGBoost loads
    the result as one booster whose boosting rounds are ``base``'s followed by ``new``'s.
    """
    out = json.loads(json.dumps(base if base is not None else _without_trees(new)))
    model = out["learner"]["gradient_booster"]["model"]
    src = new["learner"]["gradient_booster"]["model"]
    indptr = model.get("iteration_indptr") or [0]
    src_indptr = src.get("iteration_indptr") or list(range(len(src["trees"]) + 1))
    for tree, klass in zip(src["trees"], src["tree_info"], strict=True):
        tree = json.loads(json.dumps(tree))
        if scale != 1.0:
            for node, left in enumerate(tree["left_children"]):
                if left == -1:  # a leaf: its value is the split condition (and base weight)
                    tree["split_conditions"][node] *= scale
                    tree["base_weights"][node] *= scale
        tree["id"] = len(model["trees"])
        model["trees"].append(tree)
        model["tree_info"].append(klass)
    for a, b in zip(src_indptr[:-1], src_indptr[1:], strict=True):
        indptr.append(indptr[-1] + (b - a))
    model["iteration_indptr"] = indptr
    model["gbtree_model_param"]["num_trees"] = str(len(model["trees"]))
    return out  # type: ignore[no-any-return]


def _without_trees(model: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(model))
    inner = out["learner"]["gradient_booster"]["model"]
    inner["trees"], inner["tree_info"], inner["iteration_indptr"] = [], [], [0]
    inner["gbtree_model_param"]["num_trees"] = "0"
    return out  # type: ignore[no-any-return]


def to_array(model: dict[str, Any]) -> np.ndarray:
    """A parsed booster JSON as the uint8 array that travels."""
    return np.frombuffer(json.dumps(model).encode("utf-8"), dtype=np.uint8).copy()


def load_booster(raw: np.ndarray, *, num_features: int, objective: str) -> Any:
    """An ``xgboost.Booster`` from checked JSON bytes (``None`` for the empty model)."""
    if raw.size == 0:
        return None
    check_booster_json(raw, num_features=num_features, objective=objective)
    xgb = xgboost_module()
    return xgb.Booster(model_file=bytearray(raw.tobytes()))
