"""Accountability wiring: turn the ``[ledger]`` section into the round ledger, its pool wrapper and
the contribution scores of a run (:mod:`fedloom.ledger`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedloom.core.parameters import Parameters
from fedloom.core.pool import ClientPool
from fedloom.core.types import EvaluateRes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["ledger_parts", "signing_key", "ledger_rule"]

log = logging.getLogger(__name__)


def signing_key(ledger_key: str, run_dir: Path, key_dir: str | None) -> Ed25519PrivateKey:
    """The key that signs the ledger: ``--ledger-key``, else ``ledger.key`` of the server's credentials
    (``fedloom certs``), else the run directory's own (made now for a new run). Its public half is
    written to ``RUN_DIR/ledger.pub``."""
    from fedloom.ledger.keys import KEY_FILE, PUB_FILE, load_private_key, public_pem, write_key_pair

    if ledger_key:
        key = load_private_key(ledger_key)
    elif key_dir and (Path(key_dir) / KEY_FILE).exists():
        key = load_private_key(Path(key_dir) / KEY_FILE)
    elif (run_dir / KEY_FILE).exists():
        key = load_private_key(run_dir / KEY_FILE)
    else:
        if key_dir:
            log.warning("no %s in %s: signing the ledger with a key made for this run (clients cannot check "
                        "receipts without its public key); rerun `fedloom certs` to make one", KEY_FILE, key_dir)
        return write_key_pair(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / PUB_FILE).write_bytes(public_pem(key))
    return key


def ledger_rule(sim: Any) -> dict[str, Any]:
    """The aggregation rule and hyperparameters an entry records (``sim``: a built
    :class:`~fedloom.app.build.Simulation`)."""
    cfg = sim.config
    return {
        "strategy": type(sim.strategy).__name__,
        "algorithm": dataclasses.asdict(cfg.algorithm),
        "weighted": cfg.federation.weighted,
        "fraction": cfg.federation.fraction,
        "privacy": {"dp": cfg.privacy.dp, "secagg": cfg.privacy.secagg, "clip": cfg.privacy.clip,
                    "noise_multiplier": cfg.privacy.noise_multiplier},
        "compression": cfg.communication.compression,
        "he": cfg.encryption.he,
    }


def ledger_parts(sim: Any, pool: ClientPool, run_dir: str | Path | None, *,
                 evaluate_fn: Callable[[], Callable[[Parameters], EvaluateRes]], key_dir: str | None = None,
                 receipts: bool = False) -> tuple[ClientPool, list[Any]]:
    """The pool (wrapped to hash updates) and the observers (ledger, contribution scores) of the run;
    ``evaluate_fn`` makes the server's central evaluation (for contribution scores).

    Nothing changes without a run directory or with ``--no-ledger`` and no ``--contributions``."""
    cfg = sim.config
    if run_dir is None:
        return pool, []
    run_dir = Path(run_dir)
    observers: list[Any] = []
    if cfg.ledger.write_ledger:
        from fedloom.ledger.observer import LedgerObserver, LedgerPool

        run_dir.mkdir(parents=True, exist_ok=True)
        ledger = LedgerObserver(run_dir, signing_key(cfg.ledger.ledger_key, run_dir, key_dir), ledger_rule(sim),
                                receipts=receipts)
        pool = LedgerPool(pool, ledger)
        observers.append(ledger)
    if cfg.ledger.contributions:
        from fedloom.ledger.contributions import ContributionObserver

        observers.append(ContributionObserver(evaluate_fn(), run_dir,
                                              metric=cfg.ledger.contribution_metric,
                                              permutations=cfg.ledger.contribution_permutations,
                                              tolerance=cfg.ledger.contribution_tolerance, seed=cfg.run.seed))
    return pool, observers
