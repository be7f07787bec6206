"""The ``[ledger]`` section: the signed round ledger and the contribution scores."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option

__all__ = ["LedgerOptions"]


@dataclass
class LedgerOptions:
    """``[ledger]``: a signed, hash-chained round ledger (``ledger.jsonl``) and contribution scores."""

    write_ledger: bool = option(True, "Write a signed, tamper-evident round ledger (ledger.jsonl) in the run "
                                "directory; check it with `fedloom audit verify RUN_DIR`.", flag="--ledger")
    ledger_key: str = option("", "Ed25519 private key (PEM) that signs the ledger (default: ledger.key of the "
                             "server's credentials; in simulation a key made for the run, saved in the run directory).")
    contributions: bool = option(False, "Score each client's contribution (leave-one-out and GTG-Shapley) on the "
                                 "server's validation data; costs extra evaluations every round.")
    contribution_metric: str = option("loss", "Utility of the contribution scores: loss (-loss) or accuracy.",
                                      choices=lambda: ("loss", "accuracy"))
    contribution_permutations: int = option(0, "Most GTG-Shapley permutations per round (0: max(50, 4 x clients)).")
    contribution_tolerance: float = option(1e-3, "GTG-Shapley truncation and convergence threshold.")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for values out of range."""
        need(self.contribution_metric in ("loss", "accuracy"),
             f"contribution_metric must be loss or accuracy, got {self.contribution_metric!r}")
        need(self.contribution_permutations >= 0, "contribution_permutations must be >= 0")
        need(self.contribution_tolerance >= 0, "contribution_tolerance must be >= 0")
