"""Accountability: a tamper-evident, signed round ledger, Merkle inclusion proofs, client receipts
and per-client contribution scores (see ``docs/accountability.md``).

The ledger is a transparency log (hash chain plus RFC 6962 Merkle trees) signed with Ed25519; no
blockchain. Modules: :mod:`~fedloom.ledger.hashing` (digests), :mod:`~fedloom.ledger.merkle`,
:mod:`~fedloom.ledger.chain` (entries, keys, verification), :mod:`~fedloom.ledger.observer`
(the round observer and the pool wrapper that hashes what the server receives),
:mod:`~fedloom.ledger.receipts` and :mod:`~fedloom.ledger.contributions`.
"""

__all__: list[str] = []  # the modules are the API: import from fedloom.ledger.<module>
