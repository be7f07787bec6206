"""q-FedAvg: fair resource allocation, weighing clients with a high loss more (q-FFL).

Paper: Tian Li, Maziar Sanjabi, Ahmad Beirami, Virginia Smith, "Fair Resource Allocation in
Federated Learning", ICLR 2020, arXiv:1905.10497 (Algorithm 2, q-FedAvg).

The objective ``sum_k p_k F_k^{q+1}(w) / (q+1)`` puts more weight on clients whose loss is high;
``q = 0`` is FedAvg's objective. Each client reports ``F_k(w^t)``, its training loss at the global
model it received (``initial_loss``: the strategy asks with ``report_initial_loss`` in the fit
config; :class:`~fedloom.torch.TorchClient` answers), and trains locally to ``wbar_k``. With the
Lipschitz estimate ``L = 1/lr`` (the clients' learning rate):

    dw_k    = L (w^t - wbar_k)
    Delta_k = F_k^q dw_k
    h_k     = q F_k^{q-1} ||dw_k||^2 + L F_k^q
    w^{t+1} = w^t - sum_k p_k Delta_k / sum_k p_k h_k

with ``p_k`` the client's weight (its example count, or 1 under ``--weighting uniform``: the paper
samples clients with probability ``n_k / n`` and averages uniformly). With ``q = 0`` this is
exactly FedAvg's weighted mean of the returned models. The step goes through the server optimizer
(plain addition by default); updates are norm-bounded as FedAvg's are.

Example:
    >>> strategy = QFedAvg(q=1.0, fraction_fit=0.5)
    >>> strategy.round_fit_config(strategy.initialize(Parameters()), 1)["report_initial_loss"]
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedloom.core.strategy import Failure, ServerState, too_few_results, weighted_mean_metrics
from fedloom.core.types import ClientId, Config, FitRes, Metrics
from fedloom.errors import ConfigError
from fedloom.strategies.fedavg import FedAvg, bound_update_norms, update_rows
from fedloom.strategies.registry import STRATEGIES

if TYPE_CHECKING:
    from fedloom.strategies.options import StrategyOptions

__all__ = ["QFedAvg", "qffl_step"]


class QFedAvg(FedAvg):
    """FedAvg with q-FFL's aggregation (see the module docstring).

    Args:
        q: Fairness exponent ``q >= 0`` (0: FedAvg; larger: more weight on high-loss clients).
        lipschitz: The Lipschitz estimate ``L``; ``None`` (default): ``1 / lr`` of the fit config.
        **kwargs: :class:`FedAvg` arguments (sampling, weighting, evaluation, server optimizer, caps).
    """

    def __init__(self, *, q: float = 1.0, lipschitz: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not q >= 0:
            raise ConfigError(f"q must be >= 0, got {q}")
        if lipschitz is not None and not lipschitz > 0:
            raise ConfigError(f"lipschitz must be > 0, got {lipschitz}")
        self.q = float(q)
        self.lipschitz = lipschitz

    def round_fit_config(self, state: ServerState, rnd: int) -> Config:
        config = super().round_fit_config(state, rnd)
        config["report_initial_loss"] = True
        return config

    def lipschitz_for(self, state: ServerState, rnd: int) -> float:
        """``L``: the configured one, else ``1 / lr`` of the round's fit config (0.01 when it has none)."""
        if self.lipschitz is not None:
            return self.lipschitz
        return 1.0 / float(self.round_fit_config(state, rnd).get("lr", 0.01))

    def aggregate_fit(
        self,
        state: ServerState,
        rnd: int,
        results: Sequence[tuple[ClientId, FitRes]],
        failures: Sequence[Failure],
    ) -> Metrics:
        if self.sampling == "poisson" and not results and not failures:
            return {"fit_clients": 0, "fit_failures": 0}
        usable, failed = [], list(failures)
        for cid, res in results:
            loss = res.metrics.get("initial_loss")
            if isinstance(loss, (int, float)) and not isinstance(loss, bool) and np.isfinite(loss) and loss >= 0:
                usable.append((cid, res))
            else:
                failed.append(Failure(cid, "q-FedAvg needs the client's loss at the received model (metric "
                                           "initial_loss, asked for by report_initial_loss in the fit config): "
                                           "a TorchClient reports it, your own client must too"))
        if len(usable) < self.min_fit_results:
            raise too_few_results(rnd, len(usable), self.min_fit_results, failed)
        global_vec = state.parameters.flatten()
        updates, bounded = bound_update_norms(update_rows([r.parameters for _, r in usable], global_vec),
                                              self.max_norm_ratio)
        losses = np.array([float(r.metrics["initial_loss"]) for _, r in usable])
        delta = qffl_step(updates, losses, self.client_weights(usable, rnd), q=self.q,
                          lipschitz=self.lipschitz_for(state, rnd))
        self.apply_update(state, rnd, delta)
        metrics: Metrics = {"fit_clients": len(usable), "fit_failures": len(failed)}
        if bounded:
            metrics["fit_norm_bounded"] = bounded
        counts = self.example_counts(usable)
        metrics.update(weighted_mean_metrics([(n, r.metrics) for n, (_, r) in zip(counts, usable, strict=True)]))
        return metrics

    def __repr__(self) -> str:
        return f"QFedAvg(q={self.q}, fraction_fit={self.fraction_fit}, weighted={self.weighted})"


def qffl_step(updates: Sequence[np.ndarray], losses: np.ndarray, weights: np.ndarray, *, q: float,
              lipschitz: float) -> np.ndarray:
    """q-FedAvg's change of the global model from the clients' updates ``wbar_k - w`` and losses ``F_k(w)``.

    Example (``q = 0``: the weighted mean of the updates):
        >>> qffl_step([np.array([1.0]), np.array([3.0])], np.array([0.5, 2.0]), np.array([1.0, 1.0]),
        ...           q=0.0, lipschitz=10.0).tolist()
        [2.0]
    """
    weights = np.asarray(weights, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    fq = np.power(losses, q)  # 0 ** 0 == 1: q = 0 weighs every client alike
    num = np.zeros_like(updates[0], dtype=np.float64)
    den = 0.0
    for u, f, fqk, p in zip(updates, losses, fq, weights, strict=True):
        dw = -lipschitz * u  # L (w - wbar_k)
        num += p * fqk * dw
        grad_term = q * (f ** (q - 1.0)) * float(np.dot(dw, dw)) if q > 0 and f > 0 else 0.0
        den += p * (grad_term + lipschitz * fqk)
    if not den > 0:  # every client at zero loss with q > 0: nothing to improve
        return np.zeros_like(num)
    return -num / den


@STRATEGIES.register("qfedavg", help="q-FedAvg: fair aggregation weighing high-loss clients more (Li et al. 2020).")
def _build_qfedavg(options: StrategyOptions, common: dict) -> QFedAvg:
    return QFedAvg(q=options.q, **common)
