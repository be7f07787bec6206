"""The communication graph of SecAgg+: who masks with whom and who holds whose shares.

Paper: James Bell, Keith Bonawitz, Adrià Gascón, Tancrède Lepoint, Mariana Raykova, "Secure
Single-Server Aggregation with (Poly)Logarithmic Overhead", ACM CCS 2020, eprint 2020/704.

SecAgg+ replaces the complete graph of the original SecAgg with a random ``k``-regular graph,
``k = O(log n)``: a Harary graph ``H_{k,n}`` whose vertices are randomly permuted (the construction
of Bell et al.). Client ``i`` is joined to the ``k/2`` clients on each side of it in a random
cyclic order (and, for odd ``k``, to the opposite one). ``k >= n - 1`` is the complete graph, i.e.
the original SecAgg of Bonawitz et al. (CCS 2017).

Example:
    >>> g = neighbour_graph(10, 4, np.random.default_rng(0))
    >>> sorted(len(v) for v in g) == [4] * 10
    True
"""

from __future__ import annotations

import math

import numpy as np

from fedloom.errors import ConfigError

__all__ = ["default_degree", "neighbour_graph", "default_threshold"]


def default_degree(n: int) -> int:
    """``k ~ 2 log2 n`` (at least 4, at most ``n - 1``), adjusted so that ``n * k`` is even."""
    if n <= 1:
        return 0
    k = min(n - 1, max(4, math.ceil(2 * math.log2(n))))
    if (n * k) % 2:
        k = k + 1 if k + 1 <= n - 1 else k - 1
    return k


def default_threshold(k: int) -> int:
    """Shares needed to reconstruct: a strict majority of the ``k`` holders (at least 2)."""
    return max(2, k // 2 + 1) if k >= 2 else 1


def neighbour_graph(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Neighbour lists (sorted indices) of a randomly permuted Harary graph ``H_{k,n}``.

    ``k < 0`` or ``k >= n - 1`` gives the complete graph.
    """
    if n < 2:
        raise ConfigError(f"secure aggregation needs at least 2 clients in a round, got {n}")
    if k < 0 or k >= n - 1:
        return [np.array([j for j in range(n) if j != i], dtype=np.int64) for i in range(n)]
    if k < 1:
        raise ConfigError(f"secagg neighbours must be >= 1, got {k}")
    if (n * k) % 2:
        raise ConfigError(f"no {k}-regular graph on {n} clients (n * k is odd); choose an even k")
    order = rng.permutation(n)
    adj: list[set[int]] = [set() for _ in range(n)]
    for pos in range(n):
        for step in range(1, k // 2 + 1):
            a, b = int(order[pos]), int(order[(pos + step) % n])
            adj[a].add(b)
            adj[b].add(a)
        if k % 2:
            a, b = int(order[pos]), int(order[(pos + n // 2) % n])
            adj[a].add(b)
            adj[b].add(a)
    return [np.array(sorted(s), dtype=np.int64) for s in adj]
