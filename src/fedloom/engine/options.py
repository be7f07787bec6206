"""The federation section of a run: how many clients, rounds, and who takes part each round."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.core.registry import is_import_path

__all__ = ["AsyncOptions", "FederationOptions"]


@dataclass
class FederationOptions:
    """``[federation]``: population, rounds, sampling and evaluation schedule."""

    clients: int = option(10, "Number of simulated clients.")
    rounds: int = option(20, "Number of federated rounds.")
    fraction: float = option(1.0, "Fraction of clients sampled for training each round, in (0, 1].")
    min_clients: int = option(1, "Minimum clients sampled per round.")
    fraction_evaluate: float = option(0.0, "Fraction of clients for federated evaluation (0 = central only; the "
                                      "FedAvg class defaults to 1.0, as Flower does).")
    weighted: bool = option(True, "Weight client updates by their number of examples.")
    eval_every: int = option(1, "Evaluate every N rounds (and after the last).")
    central_eval: str = option("auto", "Central evaluation of the global model: 'builtin' (the server's held-out "
                               "split of --dataset with --model), 'none', or your 'package.module:factory': an "
                               "evaluate_fn(server_round, parameters) (or evaluate_fn(parameters)), or a factory "
                               "taking no argument that returns one. 'auto': builtin, or none with client_fn.")
    observers: str = option("", "Comma-separated 'package.module:factory' of your round observers (an object with "
                            "on_round_end(record, state), or a class/factory taking no argument that makes one).")
    max_model_change: float = option(1000.0, "Fail a round whose new global model moved more than this many times "
                                     "the previous model's L2 norm (floored at 1), keeping the previous state "
                                     "(0 = no bound; a non-finite model always fails the round).")

    def observer_specs(self) -> list[str]:
        """The ``observers`` names, split."""
        return [o.strip() for o in self.observers.split(",") if o.strip()]

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        need(self.clients >= 1, f"clients must be >= 1, got {self.clients}")
        need(self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}")
        need(0.0 < self.fraction <= 1.0, f"fraction must be in (0, 1], got {self.fraction}")
        need(0.0 <= self.fraction_evaluate <= 1.0, f"fraction_evaluate must be in [0, 1], got {self.fraction_evaluate}")
        need(self.min_clients >= 1, f"min_clients must be >= 1, got {self.min_clients}")
        need(self.min_clients <= self.clients,
             f"min_clients ({self.min_clients}) cannot exceed clients ({self.clients})")
        need(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        need(self.central_eval in ("auto", "builtin", "none") or is_import_path(self.central_eval),
             f"central_eval must be auto, builtin, none or 'package.module:factory', got {self.central_eval!r}")
        bad = [o for o in self.observer_specs() if not is_import_path(o)]
        need(not bad, f"observers must be 'package.module:factory' names, got {bad}")
        need(self.max_model_change >= 0, f"max_model_change must be >= 0 (0 = no bound), got {self.max_model_change}")


@dataclass
class AsyncOptions:
    """``[asynchrony]``: synchronous rounds or asynchronous training (FedBuff, FedAsync); docs/async.md."""

    mode: str = option("sync", "sync: rounds wait for every sampled client; async: the server keeps --concurrency "
                       "clients training and updates the model as results arrive (--rounds counts server "
                       "updates).", choices=lambda: ("sync", "async"))
    async_aggregation: str = option("fedbuff", "fedbuff: aggregate every --buffer-size arrivals (Nguyen et al. "
                                    "2022); fedasync: mix every arrival into the model (Xie et al. 2019).",
                                    choices=lambda: ("fedbuff", "fedasync"))
    buffer_size: int = option(10, "FedBuff: client updates per server update.")
    concurrency: int = option(0, "Clients training at any time in async mode (0: the synchronous cohort, "
                              "fraction x clients).")
    staleness: str = option("poly:0.5", "Discount of stale updates: constant, poly:a ((1+s)^-a) or hinge:a,b.")
    max_staleness: int = option(0, "Drop updates more than this many server updates old (0: keep all).")
    async_alpha: float = option(0.5, "FedAsync: mixing weight of a fresh update, in (0, 1].")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        from fedloom.strategies.staleness import check_staleness_spec

        need(self.mode in ("sync", "async"), f"mode must be sync or async, got {self.mode!r}")
        need(self.async_aggregation in ("fedbuff", "fedasync"),
             f"async_aggregation must be fedbuff or fedasync, got {self.async_aggregation!r}")
        need(self.buffer_size >= 1, f"buffer_size must be >= 1, got {self.buffer_size}")
        need(self.concurrency >= 0, f"concurrency must be >= 0 (0: the cohort size), got {self.concurrency}")
        need(self.max_staleness >= 0, f"max_staleness must be >= 0 (0: no limit), got {self.max_staleness}")
        need(0.0 < self.async_alpha <= 1.0, f"async_alpha must be in (0, 1], got {self.async_alpha}")
        check_staleness_spec(self.staleness)
