"""Histogram-based gradient-boosted trees, split between clients (histograms) and server (splits).

The model is a set of fixed-layout arrays (one row per tree, nodes in heap order: node ``n`` has
children ``2n+1`` and ``2n+2``), so it is plain :class:`~fedloom.core.parameters.Parameters`:

* ``bin_edges`` ``[F, B-1]``: the global bin edges; feature value ``x`` is in bin
  ``searchsorted(edges, x, side="right")``, and a split at bin ``s`` sends ``x < edges[s]`` left;
* ``status`` ``[T, N]``: 0 unused, 1 open (waiting for its split), 2 split, 3 leaf;
* ``feature``, ``split_bin`` ``[T, N]`` (int64) and ``threshold``, ``value`` ``[T, N]`` (float64,
  leaf values already multiplied by eta);
* ``cursor`` ``[3]``: ``(stage, tree, level)``; stage 0 is the sketch round, 1 growing.

A round of growth: every client computes gradients and hessians of its rows under the finished trees,
routes its rows to the open nodes of the current level and sends, per open node, the sums of
gradient and hessian per (feature, bin). The server sums those histograms (only sums: SecAgg can
add them) and picks each node's split with XGBoost's exact formulas (:func:`best_split`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedloom.core.parameters import Parameters

__all__ = ["TreeParams", "SKETCH_RANGE", "SKETCH_CELLS", "initial_model", "sketch_counts", "edges_from_sketch",
           "bin_features", "gradients", "node_histograms", "best_split", "predict_margin", "open_nodes",
           "grow_level", "finished_trees"]

SKETCH_RANGE = 8.0
"""The sketch grid spans ``[-8, 8]`` (standardized features) plus one cell below and one above."""
SKETCH_CELLS = 1024
"""Cells of the sketch grid: edges are placed on its boundaries (resolution 16/1024)."""
RT_EPS = 1e-6
"""XGBoost's ``kRtEps``: a split must reduce the loss by more than this."""


@dataclass(frozen=True)
class TreeParams:
    """XGBoost's hyperparameters as the histogram strategy uses them."""

    objective: str = "binary:logistic"
    eta: float = 0.3
    max_depth: int = 4
    reg_lambda: float = 1.0
    gamma: float = 0.0
    min_child_weight: float = 1.0
    bins: int = 32

    @property
    def base_margin(self) -> float:
        return 0.0  # base_score 0.5 for binary:logistic (logit 0), 0.0 for reg:squarederror

    @property
    def nodes(self) -> int:
        return 2 ** (self.max_depth + 1) - 1


def initial_model(num_features: int, p: TreeParams) -> Parameters:
    """The model before the sketch round: no edges yet, one tree whose root is open."""
    tree = _new_tree(p)
    return Parameters({"bin_edges": np.zeros((num_features, p.bins - 1)), **tree,
                       "cursor": np.array([0, 0, 0], dtype=np.int64)})


def _new_tree(p: TreeParams, rows: int = 1) -> dict[str, np.ndarray]:
    status = np.zeros((rows, p.nodes), dtype=np.int64)
    status[:, 0] = 1
    return {"status": status, "feature": np.full((rows, p.nodes), -1, dtype=np.int64),
            "split_bin": np.full((rows, p.nodes), -1, dtype=np.int64),
            "threshold": np.zeros((rows, p.nodes)), "value": np.zeros((rows, p.nodes))}


# -- client side ---------------------------------------------------------------------------------------
def sketch_counts(x: np.ndarray) -> np.ndarray:
    """Per feature, how many rows fall in each cell of the fixed sketch grid ``[F, SKETCH_CELLS + 2]``."""
    grid = np.linspace(-SKETCH_RANGE, SKETCH_RANGE, SKETCH_CELLS + 1)
    out = np.zeros((x.shape[1], SKETCH_CELLS + 2))
    for f in range(x.shape[1]):
        cells = np.searchsorted(grid, x[:, f], side="right")
        out[f] = np.bincount(cells, minlength=SKETCH_CELLS + 2)
    return out


def bin_features(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of every value: ``searchsorted(edges[f], x[:, f], side="right")`` (int64 ``[n, F]``)."""
    return np.stack([np.searchsorted(edges[f], x[:, f], side="right") for f in range(x.shape[1])], axis=1)


def gradients(margin: np.ndarray, y: np.ndarray, objective: str) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives of the loss at ``margin`` (logistic or squared error)."""
    if objective == "binary:logistic":
        p = 1.0 / (1.0 + np.exp(-margin))
        return p - y, np.maximum(p * (1.0 - p), 1e-16)
    return margin - y, np.ones_like(margin)


def route(bins: np.ndarray, model: Parameters, tree: int) -> np.ndarray:
    """The node of tree ``tree`` each row reaches, following splits until a node that is not split."""
    feature, split_bin, status = model["feature"][tree], model["split_bin"][tree], model["status"][tree]
    node = np.zeros(len(bins), dtype=np.int64)
    rows = np.arange(len(bins))
    for _ in range(len(status).bit_length()):
        inner = status[node] == 2
        if not inner.any():
            break
        f = feature[node]
        left = bins[rows, np.maximum(f, 0)] <= split_bin[node]
        node = np.where(inner, np.where(left, 2 * node + 1, 2 * node + 2), node)
    return node


def open_nodes(model: Parameters) -> np.ndarray:
    """The open nodes of the current tree at the current level, in index order."""
    _, tree, level = (int(v) for v in model["cursor"])
    lo, hi = 2**level - 1, 2 ** (level + 1) - 1
    status = model["status"][tree]
    return np.arange(lo, hi)[status[lo:hi] == 1]


def node_histograms(x: np.ndarray, y: np.ndarray, model: Parameters, p: TreeParams) -> np.ndarray:
    """This client's gradient/hessian sums per open node, feature and bin: ``[K, F, B, 2]``."""
    edges = model["bin_edges"]
    bins = bin_features(x, edges)
    tree = int(model["cursor"][1])
    g, h = gradients(predict_margin(x, model), y.astype(np.float64), p.objective)
    nodes = open_nodes(model)
    reached = route(bins, model, tree)
    out = np.zeros((len(nodes), x.shape[1], p.bins, 2))
    for k, node in enumerate(nodes):
        mine = reached == node
        for f in range(x.shape[1]):
            out[k, f, :, 0] = np.bincount(bins[mine, f], weights=g[mine], minlength=p.bins)
            out[k, f, :, 1] = np.bincount(bins[mine, f], weights=h[mine], minlength=p.bins)
    return out


def finished_trees(model: Parameters) -> int:
    """Trees complete and used for prediction (all but the one being grown)."""
    stage, tree, _ = (int(v) for v in model["cursor"])
    return tree if stage == 1 else 0


def predict_margin(x: np.ndarray, model: Parameters, *, trees: int | None = None) -> np.ndarray:
    """The margin of the finished trees (or the first ``trees``) on raw features ``x``."""
    count = finished_trees(model) if trees is None else trees
    margin = np.zeros(len(x))
    rows = np.arange(len(x))
    for t in range(count):
        status, feature, threshold, value = (model[k][t] for k in ("status", "feature", "threshold", "value"))
        node = np.zeros(len(x), dtype=np.int64)
        for _ in range(len(status).bit_length()):
            inner = status[node] == 2
            if not inner.any():
                break
            left = x[rows, np.maximum(feature[node], 0)] < threshold[node]
            node = np.where(inner, np.where(left, 2 * node + 1, 2 * node + 2), node)
        margin += value[node]
    return margin


# -- server side ---------------------------------------------------------------------------------------
def edges_from_sketch(counts: np.ndarray, bins: int) -> np.ndarray:
    """Global bin edges ``[F, bins-1]`` at the pooled quantiles ``i/bins`` of the summed sketch counts.

    Edges sit on sketch-grid boundaries and are made strictly increasing (duplicates, from features
    with few distinct values, are pushed up by a tiny step so that their bins stay empty).
    """
    grid = np.linspace(-SKETCH_RANGE, SKETCH_RANGE, SKETCH_CELLS + 1)
    bounds = np.concatenate([grid, [grid[-1] + 1.0]])  # cell i holds values below bounds[i]
    edges = np.zeros((counts.shape[0], bins - 1))
    for f in range(counts.shape[0]):
        cdf = np.cumsum(counts[f])
        total = cdf[-1] if cdf[-1] > 0 else 1.0
        qs = np.arange(1, bins) / bins * total
        cells = np.searchsorted(cdf, qs, side="left")
        e = bounds[np.minimum(cells, len(bounds) - 1)]
        for i in range(1, len(e)):
            if e[i] <= e[i - 1]:
                e[i] = np.nextafter(e[i - 1], np.inf)
        edges[f] = e
    return edges


def _gain(g: np.ndarray | float, h: np.ndarray | float, p: TreeParams) -> np.ndarray:
    return np.where(np.asarray(h) < p.min_child_weight, 0.0, np.square(g) / (np.asarray(h) + p.reg_lambda))


def leaf_weight(g: float, h: float, p: TreeParams) -> float:
    """XGBoost's leaf weight ``-G/(H+lambda)`` times eta (0 below ``min_child_weight``)."""
    if h < p.min_child_weight or h <= 0:
        return 0.0
    return float(-g / (h + p.reg_lambda) * p.eta)


def best_split(hist: np.ndarray, p: TreeParams) -> tuple[int, int, float, tuple[float, float], tuple[float, float]]:
    """The best split of one node from its summed histogram ``[F, B, 2]``.

    Returns ``(feature, bin, loss_chg, (G_left, H_left), (G_right, H_right))``; ``feature = -1`` when
    no split is valid (XGBoost's rules: both children's hessian >= ``min_child_weight`` and > 0,
    ``loss_chg > 1e-6`` and ``>= gamma``, where ``loss_chg = GL²/(HL+λ) + GR²/(HR+λ) - G²/(H+λ)``).
    """
    total = hist[0].sum(axis=0)
    left = np.cumsum(hist[:, :-1, :], axis=1)  # [F, B-1, 2]: split after bin s
    right = total - left
    gl, hl, gr, hr = left[..., 0], left[..., 1], right[..., 0], right[..., 1]
    valid = (hl >= p.min_child_weight) & (hr >= p.min_child_weight) & (hl > 0) & (hr > 0)
    chg = np.where(valid, _gain(gl, hl, p) + _gain(gr, hr, p) - _gain(total[0], total[1], p), -np.inf)
    flat = int(np.argmax(chg))  # first maximum: lowest feature, then lowest bin
    f, s = divmod(flat, chg.shape[1])
    best = float(chg[f, s])
    if not (best > RT_EPS and best >= p.gamma):
        return -1, -1, best, (float(total[0]), float(total[1])), (0.0, 0.0)
    return f, s, best, (float(gl[f, s]), float(hl[f, s])), (float(gr[f, s]), float(hr[f, s]))


def grow_level(model: Parameters, hist: np.ndarray, p: TreeParams) -> Parameters:
    """Apply one level's summed histograms ``[K, F, B, 2]`` (one per open node): split or close each
    node, then advance the cursor (to the next level, or a new tree when this one is done)."""
    arrays = {k: np.array(v) for k, v in model.items()}
    _, tree, level = (int(v) for v in arrays["cursor"])
    status, feature, split_bin = arrays["status"][tree], arrays["feature"][tree], arrays["split_bin"][tree]
    threshold, value = arrays["threshold"][tree], arrays["value"][tree]
    edges = arrays["bin_edges"]
    last = level + 1 >= p.max_depth
    for k, node in enumerate(open_nodes(model)):
        f, s, _, (gl, hl), (gr, hr) = best_split(hist[k], p)
        if f < 0:
            status[node] = 3
            value[node] = leaf_weight(gl, hl, p)
            continue
        status[node], feature[node], split_bin[node], threshold[node] = 2, f, s, edges[f, s]
        for child, (g, h) in ((2 * node + 1, (gl, hl)), (2 * node + 2, (gr, hr))):
            if last:
                status[child], value[child] = 3, leaf_weight(g, h, p)
            else:
                status[child] = 1
    if last or not (status == 1).any():
        arrays["cursor"] = np.array([1, tree + 1, 0], dtype=np.int64)
        for key, row in _new_tree(p).items():
            arrays[key] = np.concatenate([arrays[key], row])
    else:
        arrays["cursor"] = np.array([1, tree, level + 1], dtype=np.int64)
    return Parameters(arrays)
