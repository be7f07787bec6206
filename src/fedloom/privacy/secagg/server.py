"""The server side of SecAgg+: a client pool wrapper whose one result is the securely computed sum.

``SecAggPool(inner)`` implements the :class:`~fedloom.core.pool.ClientPool` protocol. Its
``fit`` runs the four stages of :mod:`fedloom.privacy.secagg.protocol` as ordinary batches of
``inner.fit`` tasks (so every backend, in-process or remote, carries them), recovers the masks of
clients that dropped after sharing their keys, and returns ONE :class:`FitRes`: the global model
plus the weighted mean of the clipped deltas, with ``num_examples`` the survivors' total. FedAvg
and the round loop run unchanged on it. The raw sum (and the count of unclipped updates, for
adaptive clipping) rides along in ``extras["secagg_sum"]`` for the DP wrapper.

If too few share holders answer to recover any needed secret, the round fails with a
:class:`~fedloom.errors.RoundFailedError` and nothing of it is used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.pool import ClientPool, PoolResult
from fedloom.core.strategy import Failure, weighted_mean_metrics
from fedloom.core.types import ClientId, Config, EvaluateIns, EvaluateRes, FitIns, FitRes, Scalar
from fedloom.errors import ConfigError, RoundFailedError, ValidationError
from fedloom.privacy.noise import SYSTEM
from fedloom.privacy.secagg import crypto, protocol, shamir
from fedloom.privacy.secagg.graph import default_degree, default_threshold, neighbour_graph
from fedloom.privacy.secagg.protocol import ADVERTISE, MASK, SHARE, UNMASK, payload, read_payload
from fedloom.privacy.secagg.quantize import Quantizer

__all__ = ["SecAggPool", "SECAGG_SUM", "AGGREGATE_ID"]

log = logging.getLogger(__name__)

SECAGG_SUM = "secagg_sum"
"""``FitRes.extras`` key of the aggregate: ``sum`` (weighted clipped deltas), ``weight``, ``unclipped``, ``count``."""
AGGREGATE_ID = "secagg"
"""Client id under which the pool reports the aggregate result."""


class SecAggPool:
    """Run training rounds as SecAgg+ over ``inner``; evaluation passes through unchanged.

    Args:
        inner: The pool that reaches the clients (each wrapped in a :class:`SecAggClient`).
        neighbours: Degree ``k`` of the neighbour graph; ``0``: about ``2 log2 n``; ``-1``: complete graph.
        threshold: Shares needed to recover a secret (``0``: a strict majority of ``k``).
        bits: Ring size ``2^bits`` of the masked vectors.
        clip: L2 clip norm of each client's delta (a task config ``dp_clip`` overrides it per round).
        weight_cap: Example weights are ``min(n_i, cap) / cap``; ``0`` means unweighted.
        seed: Seeds the neighbour graph of each round: reproducible, and known in advance to whoever
            knows the seed (who could then corrupt the neighbours of a chosen client). ``None``
            (the default, and what ``fedloom run`` uses): a fresh graph from the OS CSPRNG each round.
    """

    def __init__(
        self,
        inner: ClientPool,
        *,
        neighbours: int = 0,
        threshold: int = 0,
        bits: int = 32,
        clip: float = 100.0,
        weight_cap: float = 1000.0,
        seed: int | None = None,
    ) -> None:
        if threshold < 0 or threshold == 1:
            raise ConfigError(f"secagg_threshold must be 0 (a majority) or >= 2, got {threshold}: with threshold 1 "
                              "every share IS the secret, so any one neighbour could unmask a client")
        if neighbours < -1:
            raise ConfigError(f"secagg_neighbours must be >= -1, got {neighbours}")
        if not clip > 0:
            raise ConfigError(f"the secagg clip norm must be > 0, got {clip}")
        Quantizer(bits, 1, 1.0)  # validates bits
        self.inner = inner
        self.neighbours = neighbours
        self.threshold = threshold
        self.bits = bits
        self.clip = clip
        self.weight_cap = weight_cap
        self.seed = seed

    def available(self) -> list[ClientId]:
        return self.inner.available()

    def evaluate(
        self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *, timeout: float | None = None
    ) -> PoolResult[EvaluateRes]:
        return self.inner.evaluate(tasks, timeout=timeout)

    def close(self) -> None:
        self.inner.close()

    def graph_parameters(self, n: int) -> tuple[int, int]:
        """Degree and threshold used for a round with ``n`` clients that advertised keys."""
        k = n - 1 if self.neighbours < 0 else (self.neighbours or default_degree(n))
        k = min(k, n - 1)
        if k < n - 1 and (n * k) % 2:
            k += 1
        t = self.threshold or default_threshold(k)
        if t > k:
            raise ConfigError(f"secagg threshold {t} exceeds the {k} neighbours each client has")
        return k, t

    def fit(
        self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None, timeout: float | None = None
    ) -> PoolResult[FitRes]:
        """One secure-aggregation round over ``tasks``; see the module docstring."""
        return _Round(self, list(tasks), timeout).run()


class _Round:
    """The server's view of one round (local to one ``fit`` call)."""

    def __init__(self, pool: SecAggPool, tasks: list[tuple[ClientId, FitIns]], timeout: float | None) -> None:
        self.pool, self.tasks, self.timeout = pool, tasks, timeout
        self.out: PoolResult[FitRes] = PoolResult()
        self.config: Config = dict(tasks[0][1].config) if tasks else {}
        self.rnd = int(self.config.get("round", 0))

    def call(self, stage: str, items: Mapping[int, tuple[Mapping[str, Scalar], Parameters, dict[str, Parameters]]],
             expect: Sequence[str]) -> dict[int, FitRes]:
        """Send one stage to the clients in ``items`` (by index); valid replies by index."""
        batch = []
        for i, (extra_cfg, params, extras) in items.items():
            cid, ins = self.tasks[i]
            config = {**ins.config, **extra_cfg, protocol.STAGE_KEY: stage, "secagg_index": i}
            batch.append((cid, FitIns(params, config, extras)))
        res = self.pool.inner.fit(batch, expected={}, timeout=self.timeout)
        self.out.stats.bytes_down += res.stats.bytes_down
        self.out.stats.bytes_up += res.stats.bytes_up
        self.out.failures.extend(Failure(f.cid, f"secagg {stage}: {f.reason}") for f in res.failures)
        index = {cid: i for i, (cid, _) in enumerate(self.tasks)}
        replies: dict[int, FitRes] = {}
        for cid, fit in res.results:
            try:
                read_payload(fit.extras, *expect)
            except ValidationError as exc:
                self.out.failures.append(Failure(cid, f"secagg {stage}: {exc}"))
                continue
            replies[index[cid]] = fit
        return replies

    def fail(self, why: str) -> RoundFailedError:
        return RoundFailedError(f"SecAgg+ round {self.rnd} aborted, no partial aggregate used: {why}")

    def run(self) -> PoolResult[FitRes]:
        pool, empty = self.pool, Parameters()
        if not self.tasks:  # nobody sampled (a Poisson cohort can be empty): nothing to aggregate, nothing revealed
            return self.out
        if len(self.tasks) < 2:
            raise self.fail(f"secure aggregation needs at least 2 clients, got {len(self.tasks)}")
        adv = self.call(ADVERTISE, {i: ({}, empty, {}) for i in range(len(self.tasks))}, ["pk_c", "pk_s"])
        u1 = sorted(adv)
        if len(u1) < 2:
            raise self.fail(f"only {len(u1)} clients advertised keys")
        k, t = pool.graph_parameters(len(u1))
        if len(u1) < t + 1:
            raise self.fail(f"only {len(u1)} clients advertised keys, threshold {t} needs {t + 1}")
        if pool.seed is None:
            rng = SYSTEM.generator()
        else:
            rng = np.random.default_rng([pool.seed, self.rnd])  # insecure-reproducible: an explicit seed only
        local = neighbour_graph(len(u1), k, rng)
        nb = {u1[a]: np.array([u1[b] for b in local[a]], dtype=np.int64) for a in range(len(u1))}
        pk_c = {i: adv[i].extras[protocol.EXTRA]["pk_c"] for i in u1}
        pk_s = {i: adv[i].extras[protocol.EXTRA]["pk_s"] for i in u1}
        common = {"secagg_threshold": t}

        def keys_of(peers: Sequence[int] | np.ndarray, which: dict[int, np.ndarray]) -> np.ndarray:
            return np.stack([which[int(v)] for v in peers]) if len(peers) else np.zeros((0, 32), np.uint8)

        share_items = {u: (common, empty, payload(peers=nb[u], pk_c=keys_of(nb[u], pk_c), pk_s=keys_of(nb[u], pk_s)))
                       for u in u1}
        shared = self.call(SHARE, share_items, ["to", "ct"])
        sealed: dict[tuple[int, int], np.ndarray] = {}
        for u, fit in list(shared.items()):
            to, ct = read_payload(fit.extras, "to", "ct")
            if not np.array_equal(to, nb[u]):
                self.out.failures.append(Failure(self.tasks[u][0], "secagg share: shares sent to the wrong peers"))
                del shared[u]
                continue
            for row, v in enumerate(to):
                sealed[(u, int(v))] = ct[row]
        u2 = set(shared)

        params = self.tasks[0][1].parameters
        dim = params.num_elements + 2
        clip = float(self.config.get("dp_clip", pool.clip))
        quantizer = Quantizer(pool.bits, max(len(u2), 1), max(clip, 1.0))
        cap = pool.weight_cap if bool(self.config.get("secagg_weighted", True)) else 0.0
        mask_cfg = {**common, "secagg_bits": pool.bits, "secagg_clients": max(len(u2), 1), "secagg_clip": clip,
                    "secagg_bound": quantizer.bound, "secagg_weight_cap": cap}
        mask_items = {}
        for u in sorted(u2):
            peers = np.array([v for v in nb[u] if v in u2], dtype=np.int64)
            mask_items[u] = (mask_cfg, self.tasks[u][1].parameters, payload(peers=peers, pk_s=keys_of(peers, pk_s)))
        masked = self.call(MASK, mask_items, ["masked"])
        for u, fit in list(masked.items()):
            vec = fit.extras[protocol.EXTRA]["masked"]
            if vec.dtype != quantizer.dtype or vec.shape != (dim,):
                self.out.failures.append(Failure(self.tasks[u][0], "secagg mask: masked vector of the wrong form"))
                del masked[u]
        u3 = set(masked)
        if len(u3) < t:
            raise self.fail(f"only {len(u3)} clients sent masked inputs, threshold {t}")

        unmask_items = {}
        for u in sorted(u3):
            peers = np.array([v for v in nb[u] if v in u2], dtype=np.int64)
            unmask_items[u] = (common, empty, payload(
                peers=peers, pk_c=keys_of(peers, pk_c),
                ct=np.stack([sealed[(int(v), u)] for v in peers]) if len(peers) else np.zeros((0, 0), np.uint8),
                alive=np.array([v in u3 for v in peers], dtype=np.bool_)))
        unmasked = self.call(UNMASK, unmask_items, ["of", "shares"])
        holders: dict[int, list[tuple[int, np.ndarray]]] = {v: [] for v in u2}
        for u, fit in unmasked.items():
            of, shares = read_payload(fit.extras, "of", "shares")
            if not np.array_equal(of, unmask_items[u][2][protocol.EXTRA]["peers"]):
                continue
            for row, v in enumerate(of):
                holders[int(v)].append((u + 1, shares[row]))

        total = np.zeros(dim, dtype=quantizer.dtype)
        for u in sorted(u3):
            total = quantizer.add(total, masked[u].extras[protocol.EXTRA]["masked"])
        for v in sorted(u2):
            got = holders[v]
            if len(got) < t:
                what = "self-mask seed" if v in u3 else "mask key (it dropped after sharing)"
                raise self.fail(f"client {self.tasks[v][0]}: only {len(got)} shares of its {what} "
                                f"came back, threshold {t}")
            xs = np.array([x for x, _ in got[:t]], dtype=np.int64)
            secret = shamir.combine(xs, np.stack([s for _, s in got[:t]]))
            if v in u3:
                total = quantizer.sub(total, crypto.prg_mask(secret, dim, pool.bits))
                continue
            sk = crypto.private_from_bytes(secret)
            for u in nb[v]:
                if int(u) in u3:
                    mask = crypto.prg_mask(protocol.pairwise_seed(sk, pk_s[int(u)].tobytes(), self.rnd), dim, pool.bits)
                    total = quantizer.sub(total, mask) if int(u) < v else quantizer.add(total, mask)
        return self.result(quantizer.decode(total), {u: masked[u] for u in sorted(u3)}, len(u2) - len(u3), quantizer)

    def result(self, vec: np.ndarray, replies: dict[int, FitRes], dropped: int,
               quantizer: Quantizer) -> PoolResult[FitRes]:
        """Package the decoded sum as one FitRes (global model + weighted mean delta)."""
        params = self.tasks[0][1].parameters
        d = params.num_elements
        weight, unclipped = float(vec[d]), float(vec[d + 1])
        if weight <= 0:
            raise self.fail("the survivors' total weight is zero")
        new = params.unflatten(params.flatten() + vec[:d] / weight)
        fits = list(replies.values())
        metrics: dict = dict(weighted_mean_metrics([(r.num_examples, r.metrics) for r in fits]))
        metrics.update({"secagg_survivors": len(fits), "secagg_dropouts": dropped,
                        "secagg_unclipped": round(unclipped) / len(fits)})
        summed = Parameters({"sum": vec[:d], "weight": np.array([weight]), "unclipped": np.array([unclipped]),
                             "count": np.array([len(fits)], np.int64), "error": np.array([quantizer.error_bound])})
        aggregate = FitRes(new, int(sum(r.num_examples for r in fits)), metrics, {SECAGG_SUM: summed})
        self.out.results.append((AGGREGATE_ID, aggregate))
        return self.out
