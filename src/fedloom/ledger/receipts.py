"""Client receipts: a signed statement, with a Merkle inclusion proof, that a client's update was
received and counted in a round (or why it was not).

The server makes one receipt per sampled client after each round (:func:`make_receipt`) and sends
it with that client's next task (``FitIns.extras["ledger_receipt"]``, the receipt's JSON as bytes).
The client checks it against what it sent and the ledger's public key (:class:`ReceiptBook`) and
keeps it in its own folder (``receipts/round-R.json``); a receipt that fails the check is logged,
kept under ``receipts/rejected/`` and never counted as proof.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, FitRes
from fedloom.errors import FedloomError
from fedloom.ledger.chain import sign, signature_ok
from fedloom.ledger.hashing import canonical_json, result_digest
from fedloom.ledger.keys import key_id
from fedloom.ledger.merkle import inclusion_proof, verify_inclusion

__all__ = ["RECEIPT_EXTRA", "ReceiptError", "ReceiptBook", "make_receipt", "check_receipt", "counts_as_update",
           "encode_receipt", "decode_receipt", "receipt_book"]

log = logging.getLogger(__name__)

RECEIPT_EXTRA = "ledger_receipt"
"""``FitIns.extras`` key of a receipt (one ``uint8`` array ``json``)."""
_DOMAIN = b"fedloom.receipt.v1\n"


class ReceiptError(FedloomError):
    """A receipt failed the client's check (forged, altered, or not about what the client sent)."""


def counts_as_update(config: Config) -> bool:
    """Whether a task's result is an update the ledger records: any fit task, and under SecAgg+ only
    the ``mask`` stage (its masked vector is what the server receives of the update)."""
    return config.get("secagg_stage", "mask") == "mask"


def make_receipt(entry: dict[str, Any], client: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed receipt of ``client`` for ledger ``entry``: ``status`` "counted" (its update is a
    leaf and was aggregated), "received" (a leaf, but not aggregated: ``reason`` says why) or
    "dropped" (no update received: ``reason``)."""
    updates = entry["updates"]
    leaves = [canonical_json(u) for u in updates]
    index = next((i for i, u in enumerate(updates) if u["client"] == client), None)
    reasons = [f["reason"] for f in entry.get("failures", []) if f["client"] == client]
    body: dict[str, Any] = {
        "client": client, "round": entry["round"], "entry_index": entry["index"],
        "merkle_root": entry["merkle_root"], "tree_size": entry["tree_size"], "key_id": key_id(key),
    }
    if index is not None:
        body.update(leaf_index=index, leaf=updates[index], proof=[p.hex() for p in inclusion_proof(leaves, index)])
    if client in entry.get("clients", []) and index is not None:
        body["status"] = "counted"
    else:
        body["status"] = "received" if index is not None else "dropped"
        body["reason"] = "; ".join(reasons) or "not aggregated in this round"
    body["sig"] = sign(key, body, domain=_DOMAIN)
    return body


def check_receipt(receipt: dict[str, Any], pub: Ed25519PublicKey, *, client: str | None = None,
                  digest: str | None = None, examples: int | None = None) -> dict[str, Any]:
    """Check a receipt's signature, its inclusion proof and (if given) that it is about ``client``
    and the update with ``digest`` and ``examples``; returns it.

    Raises:
        ReceiptError: saying what failed.
    """
    if not isinstance(receipt, dict) or "sig" not in receipt:
        raise ReceiptError("not a receipt (no signature)")
    if receipt.get("key_id") != key_id(pub) or not signature_ok(pub, receipt, domain=_DOMAIN):
        raise ReceiptError(f"round {receipt.get('round')}: the signature does not verify under the ledger's "
                           "public key: the receipt is forged or was altered")
    if client is not None and receipt.get("client") != client:
        raise ReceiptError(f"the receipt is for client {receipt.get('client')!r}, not {client!r}")
    if "leaf" not in receipt:
        if digest is not None and receipt.get("status") != "dropped":
            raise ReceiptError("the receipt has no proof for an update this client sent")
        return receipt
    leaf = receipt["leaf"]
    if leaf.get("client") != receipt.get("client"):
        raise ReceiptError("the receipt's leaf names another client")
    if digest is not None and leaf.get("update") != digest:
        raise ReceiptError(f"round {receipt.get('round')}: the receipt is about update {leaf.get('update')}, "
                           f"this client sent {digest}")
    if examples is not None and leaf.get("examples") != examples:
        raise ReceiptError(f"the receipt records {leaf.get('examples')} examples, this client sent {examples}")
    try:
        proof = [bytes.fromhex(p) for p in receipt["proof"]]
        ok = verify_inclusion(canonical_json(leaf), int(receipt["leaf_index"]), int(receipt["tree_size"]),
                              proof, bytes.fromhex(receipt["merkle_root"]))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ReceiptError(f"round {receipt.get('round')}: the inclusion proof does not lead to the signed Merkle root")
    return receipt


def encode_receipt(receipt: dict[str, Any]) -> Parameters:
    """A receipt as a ``FitIns.extras`` entry (its canonical JSON as ``uint8``)."""
    return Parameters({"json": np.frombuffer(canonical_json(receipt), dtype=np.uint8).copy()})


def decode_receipt(extra: Parameters) -> dict[str, Any]:
    """The receipt in a ``FitIns.extras`` entry; :class:`ReceiptError` if it is not one."""
    try:
        value = json.loads(np.asarray(extra["json"], dtype=np.uint8).tobytes())
    except (KeyError, ValueError) as exc:
        raise ReceiptError(f"malformed receipt payload: {exc}") from None
    if not isinstance(value, dict):
        raise ReceiptError("malformed receipt payload: not a JSON object")
    return value


@dataclass
class ReceiptBook:
    """A client's side of receipts: what it sent per round, and the receipts it checked and kept.

    Args:
        folder: Where receipts are stored (``round-R.json``; failed ones under ``rejected/``).
        public_key: The ledger's public key (``ledger.pub`` distributed with the CA).
        client: This client's name (receipts for another name fail).
    """

    folder: Path
    public_key: Ed25519PublicKey
    client: str
    sent: dict[int, tuple[str, int]] = field(default_factory=dict)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def record_sent(self, config: Config, res: FitRes) -> None:
        """Remember the digest of an update this client is about to send."""
        if counts_as_update(config) and "round" in config:
            self.sent[int(config["round"])] = (result_digest(res), int(res.num_examples))

    def receive(self, extra: Parameters) -> dict[str, Any] | None:
        """Check and store a receipt that came with a task; ``None`` (logged, kept under ``rejected/``) if it fails."""
        try:
            receipt = decode_receipt(extra)
            rnd = int(receipt.get("round", -1))
            digest, examples = self.sent.get(rnd, (None, None))
            check_receipt(receipt, self.public_key, client=self.client, digest=digest, examples=examples)
        except (ReceiptError, TypeError, ValueError) as exc:
            self.rejected.append(str(exc))
            log.error("ledger receipt REJECTED: %s", exc)
            bad = self.folder / "rejected"
            bad.mkdir(parents=True, exist_ok=True)
            raw = np.asarray(extra["json"], dtype=np.uint8).tobytes() if "json" in extra else b""
            (bad / f"receipt-{len(self.rejected)}.json").write_bytes(raw)
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"round-{rnd}.json").write_text(json.dumps(receipt, indent=1))
        self.accepted.append(receipt)
        if receipt["status"] == "counted":
            log.info("round %d: ledger receipt checked, the update was counted", rnd)
        else:
            log.warning("round %d: the server says this client's update was %s: %s", rnd, receipt["status"],
                        receipt.get("reason", ""))
        self.sent.pop(rnd, None)
        return receipt


def receipt_book(cred_dir: str | Path, client: str) -> ReceiptBook | None:
    """The receipt store of a deployed client: ``CRED_DIR/receipts``, checked against
    ``CRED_DIR/ledger.pub`` (``None``, with a log line, when the credentials hold no ``ledger.pub``)."""
    from fedloom.ledger.keys import PUB_FILE, load_public_key

    pub = Path(cred_dir) / PUB_FILE if cred_dir else None
    if pub is None or not pub.exists():
        log.info("no %s in the client's credentials: ledger receipts are not checked", PUB_FILE)
        return None
    return ReceiptBook(Path(cred_dir) / "receipts", load_public_key(pub), client)
