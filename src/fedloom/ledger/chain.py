"""Ledger entries: one signed JSON line per round, chained by hash, checked by :func:`verify_ledger`.

Each line of ``ledger.jsonl`` is the canonical JSON (:func:`~fedloom.ledger.hashing.canonical_json`)
of one entry. ``prev`` is the SHA-256 of the previous line's bytes (64 zeros for the first), ``sig``
an Ed25519 signature over the entry without ``sig``, and ``merkle_root`` the RFC 6962 root over the
entry's ``updates`` (one leaf per update the server received, sorted by client id). Changing any
byte of a line breaks its canonical form, its signature or the next line's ``prev``; deleting or
reordering lines breaks ``index``/``prev``; replacing the final model breaks the last entry's
``model_after``. :func:`verify_ledger` names the first entry that fails.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedloom.errors import FedloomError
from fedloom.ledger.hashing import canonical_json, parameters_digest, sha256_hex
from fedloom.ledger.keys import key_id, load_public_key
from fedloom.ledger.merkle import merkle_root

__all__ = ["LEDGER_FILE", "GENESIS", "LedgerError", "LedgerWriter", "VerifyReport", "read_entries", "sign",
           "signature_ok", "updates_root", "verify_ledger"]

LEDGER_FILE = "ledger.jsonl"
GENESIS = "0" * 64
"""``prev`` of the first entry."""
_DOMAIN = b"fedloom.ledger.v1\n"


class LedgerError(FedloomError):
    """A ledger (or the model it describes) failed verification at entry ``index``."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"entry {index}: {message}")
        self.index = index


def sign(key: Ed25519PrivateKey, body: dict[str, Any], *, domain: bytes = _DOMAIN) -> str:
    """Base64 Ed25519 signature of ``body`` (its canonical JSON, without a ``sig`` field)."""
    return base64.b64encode(key.sign(domain + canonical_json(body))).decode()


def signature_ok(pub: Ed25519PublicKey, signed: dict[str, Any], *, domain: bytes = _DOMAIN) -> bool:
    """Whether ``signed["sig"]`` is a valid signature of ``signed`` without its ``sig``."""
    body = {k: v for k, v in signed.items() if k != "sig"}
    try:
        pub.verify(base64.b64decode(str(signed.get("sig", "")), validate=True), domain + canonical_json(body))
    except (InvalidSignature, ValueError):
        return False
    return True


def updates_root(updates: Sequence[dict[str, Any]]) -> str:
    """Hex Merkle root over ``updates`` (each leaf: the canonical JSON of one update record)."""
    return merkle_root([canonical_json(u) for u in updates]).hex()


class LedgerWriter:
    """Append signed entries to ``ledger.jsonl``, each flushed and fsynced before the next round.

    Args:
        path: The ledger file; if it exists its last line is the chain's head and new entries follow it.
        key: The server's Ed25519 signing key.
    """

    def __init__(self, path: str | Path, key: Ed25519PrivateKey) -> None:
        self.path = Path(path)
        self.key = key
        self.key_id = key_id(key)
        self.head, self.next_index, self.last_round = GENESIS, 0, 0
        self.last: dict[str, Any] | None = None
        if self.path.exists():
            lines = self.path.read_bytes().splitlines()
            if lines:
                self.head = sha256_hex(lines[-1])
                self.next_index = len(lines)
                self.last = json.loads(lines[-1])
                self.last_round = int(self.last["round"])

    def restart(self) -> None:
        """Keep the existing file as ``ledger.jsonl.<n>.old`` and start a new chain (a fresh run in the folder)."""
        if self.path.exists():
            n = 1
            while self.path.with_name(f"{self.path.name}.{n}.old").exists():
                n += 1
            self.path.rename(self.path.with_name(f"{self.path.name}.{n}.old"))
        self.head, self.next_index, self.last_round, self.last = GENESIS, 0, 0, None

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Sign and append one entry (``fields`` plus ``index``, ``prev``, ``key_id``, ``sig``); returns it."""
        entry = {**fields, "index": self.next_index, "prev": self.head, "key_id": self.key_id}
        entry["sig"] = sign(self.key, entry)
        line = canonical_json(entry)
        with open(self.path, "ab") as fh:
            fh.write(line + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.head, self.next_index, self.last_round, self.last = sha256_hex(line), self.next_index + 1, \
            int(entry["round"]), entry
        return entry


@dataclass
class VerifyReport:
    """What :func:`verify_ledger` checked."""

    entries: int
    rounds: list[int]
    key_id: str
    final_model: str | None


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a ledger file, parsed (no checks: see :func:`verify_ledger`)."""
    return [json.loads(line) for line in Path(path).read_bytes().splitlines()]


def _check_entry(i: int, line: bytes, pub: Ed25519PublicKey, kid: str, prev_hash: str,
                 prev: dict[str, Any] | None) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise LedgerError(i, f"is not valid JSON ({exc}): the line was changed") from None
    if not isinstance(entry, dict):
        raise LedgerError(i, "is not a JSON object: the line was changed")
    try:
        canonical = canonical_json(entry)
    except ValueError:
        canonical = b""
    if canonical != line:
        raise LedgerError(i, "is not in canonical form: bytes were changed after it was written")
    if entry.get("index") != i:
        raise LedgerError(i, f"says it is entry {entry.get('index')!r}: entries were deleted, inserted or reordered")
    if entry.get("prev") != prev_hash:
        raise LedgerError(i, "does not chain to the entry before it (prev hash differs): entries were deleted, "
                             "inserted, reordered or changed")
    if entry.get("key_id") != kid:
        raise LedgerError(i, f"is signed by key {entry.get('key_id')!r}, not by the given public key {kid}")
    if not signature_ok(pub, entry):
        raise LedgerError(i, "has an invalid signature: its content was changed")
    updates = entry.get("updates")
    if not isinstance(updates, list) or entry.get("tree_size") != len(updates) or \
            entry.get("merkle_root") != updates_root(updates):
        raise LedgerError(i, "its Merkle root does not match its updates")
    if prev is not None:
        if not int(entry["round"]) > int(prev["round"]):
            raise LedgerError(i, f"round {entry['round']} does not follow round {prev['round']}")
        if entry.get("model_before") != prev.get("model_after"):
            raise LedgerError(i, f"starts from another model than entry {i - 1} ended with: a round is missing "
                                 "from the ledger")
    return entry


def verify_ledger(run_dir: str | Path, *, public_key: str | Path | None = None,
                  model: str | Path | None = None) -> VerifyReport:
    """Check ``RUN_DIR/ledger.jsonl``: canonical form, chain, indices, signatures, Merkle roots, that
    each round starts from the model the previous one produced, and that the final model
    (``model.safetensors`` unless ``model`` says otherwise) is the last entry's ``model_after``.

    Args:
        run_dir: The run directory (``fedloom run --out`` or a server's ``checkpoint_dir``).
        public_key: The ledger's public key (default: ``RUN_DIR/ledger.pub``; pass the one distributed
            with the CA to be sure the run directory's copy was not swapped).
        model: The final model to check (default: ``RUN_DIR/model.safetensors``; checked if it exists).

    Raises:
        LedgerError: naming the first entry that fails (the last entry for a wrong final model).
    """
    from fedloom.core.parameters import Parameters
    from fedloom.errors import ConfigError

    run_dir = Path(run_dir)
    path = run_dir / LEDGER_FILE
    if not path.exists():
        raise ConfigError(f"{path} does not exist: the run was made without a ledger (--no-ledger) or "
                          "RUN_DIR is not a run directory")
    pub = load_public_key(public_key or run_dir / "ledger.pub")
    kid = key_id(pub)
    data = path.read_bytes()
    if not data:
        raise LedgerError(0, "missing: the ledger is empty")
    if not data.endswith(b"\n"):
        raise LedgerError(data.count(b"\n"), "is truncated (no final newline)")
    prev_hash, prev = GENESIS, None
    rounds = []
    lines = data[:-1].split(b"\n")
    for i, line in enumerate(lines):
        prev = _check_entry(i, line, pub, kid, prev_hash, prev)
        prev_hash = sha256_hex(line)
        rounds.append(int(prev["round"]))
    assert prev is not None
    model_path = Path(model) if model else run_dir / "model.safetensors"
    final = None
    if model is not None or model_path.exists():
        try:
            final = parameters_digest(Parameters.from_bytes(model_path.read_bytes()))
        except Exception as exc:
            raise LedgerError(len(lines) - 1, f"the final model {model_path} cannot be read ({exc})") from None
        if final != prev["model_after"]:
            raise LedgerError(len(lines) - 1, f"its model_after (round {prev['round']}) is not the final model "
                                              f"{model_path}: the model was replaced, or entries after this one "
                                              "were deleted")
    return VerifyReport(entries=len(lines), rounds=rounds, key_id=kid, final_model=final)
