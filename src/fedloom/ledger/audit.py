"""``fedloom audit prove``: an inclusion proof of one client's update in one round, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedloom.errors import FedloomError
from fedloom.ledger.chain import LEDGER_FILE, read_entries, verify_ledger
from fedloom.ledger.hashing import canonical_json
from fedloom.ledger.keys import load_public_key
from fedloom.ledger.merkle import inclusion_proof, verify_inclusion

__all__ = ["prove"]


def prove(run_dir: str | Path, client: str, rnd: int, *, public_key: str | Path | None = None) -> dict[str, Any]:
    """Verify the ledger, then build and check the inclusion proof of ``client``'s update in round ``rnd``.

    Raises:
        LedgerError: the ledger fails verification.
        FedloomError: the round is not in the ledger, or the client sent no update in it (the
            message gives the recorded reason when there is one).
    """
    run_dir = Path(run_dir)
    verify_ledger(run_dir, public_key=public_key)
    load_public_key(public_key or run_dir / "ledger.pub")
    entry = next((e for e in read_entries(run_dir / LEDGER_FILE) if e["round"] == rnd), None)
    if entry is None:
        raise FedloomError(f"round {rnd} is not in the ledger of {run_dir}")
    updates = entry["updates"]
    index = next((i for i, u in enumerate(updates) if u["client"] == client), None)
    if index is None:
        reasons = [f["reason"] for f in entry["failures"] if f["client"] == client]
        why = f": {'; '.join(reasons)}" if reasons else " (it was not sampled, or sent nothing)"
        raise FedloomError(f"client {client!r} has no update in round {rnd}{why}")
    leaves = [canonical_json(u) for u in updates]
    proof = inclusion_proof(leaves, index)
    root = bytes.fromhex(entry["merkle_root"])
    ok = verify_inclusion(leaves[index], index, len(leaves), proof, root)
    return {"round": rnd, "entry_index": entry["index"], "client": client, "leaf": updates[index],
            "leaf_index": index, "tree_size": len(leaves), "proof": [p.hex() for p in proof],
            "merkle_root": entry["merkle_root"], "counted": client in entry["clients"], "verified": ok}
