"""SecAgg+ as messages: the stages, their payloads, and the key derivations both sides share.

Papers: Keith Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
Learning", ACM CCS 2017, eprint 2017/281; James Bell, Keith Bonawitz, Adrià Gascón, Tancrède
Lepoint, Mariana Raykova, "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead",
ACM CCS 2020, eprint 2020/704.

One round of secure aggregation is four client tasks, each an ordinary ``fit`` call whose
``config["secagg_stage"]`` names the stage and whose ``FitIns.extras["secagg"]`` /
``FitRes.extras["secagg"]`` carry the payload as named arrays (so any transport that carries
:class:`~fedloom.core.types.FitIns` carries SecAgg+):

==========  =========================================  ==========================================
stage       server -> client (``extras["secagg"]``)      client -> server
==========  =========================================  ==========================================
advertise   (nothing)                                  ``pk_c``, ``pk_s``: two X25519 public keys
share       ``peers``, ``pk_c``, ``pk_s`` of neighbours  ``to``, ``ct``: one AEAD-sealed message per
                                                       neighbour holding its Shamir shares of the
                                                       self-mask seed ``b`` and of ``sk_s``
mask        global model (``parameters``); ``peers``,   ``masked``: the quantized update plus the
            ``pk_s`` of neighbours that shared keys      self mask ``PRG(b)`` and pairwise masks
unmask      ``peers``, ``pk_c``, ``ct`` addressed to     ``of``, ``shares``: the share of ``b`` for
            this client, ``alive`` flags                 each alive peer, of ``sk_s`` for each
                                                       peer that dropped after sharing
==========  =========================================  ==========================================

Clients are stateless between stages except for one fresh 32-byte round secret (and the stage
reached), from which the two key pairs and ``b`` are derived with HKDF. The stage counter makes a
client refuse to mask twice or unmask twice in a round: either would leak its update.
"""

from __future__ import annotations

import numpy as np

from fedloom.core.parameters import Parameters
from fedloom.errors import ValidationError
from fedloom.privacy.secagg import crypto

__all__ = [
    "ADVERTISE",
    "EXTRA",
    "MASK",
    "SHARE",
    "STAGE_KEY",
    "UNMASK",
    "RoundKeys",
    "pairwise_seed",
    "seal_shares",
    "open_shares",
    "share_key",
]

STAGE_KEY = "secagg_stage"
"""Config key naming the stage of a SecAgg+ task."""
EXTRA = "secagg"
"""Name of the ``FitIns.extras`` / ``FitRes.extras`` entry carrying the stage payload."""
ADVERTISE, SHARE, MASK, UNMASK = "advertise", "share", "mask", "unmask"
STAGES = (ADVERTISE, SHARE, MASK, UNMASK)

SHARE_WORDS = crypto.KEY_BYTES // 2
"""Field elements per Shamir share of a 32-byte secret."""
_PLAIN_BYTES = 16 + 2 * 4 * SHARE_WORDS


class RoundKeys:
    """A client's secrets for one round, derived from its fresh round secret.

    ``c``: X25519 key for sealing shares; ``s``: X25519 key for pairwise masks; ``b``: self-mask seed.
    """

    def __init__(self, round_secret: bytes) -> None:
        self.c = crypto.private_from_bytes(crypto.hkdf(round_secret, b"key-c"))
        self.s_bytes = crypto.hkdf(round_secret, b"key-s")
        self.s = crypto.private_from_bytes(self.s_bytes)
        self.b = crypto.hkdf(round_secret, b"self-mask")


def _round_info(label: str, rnd: int) -> bytes:
    return f"{label}/{rnd}".encode()


def pairwise_seed(private: crypto.X25519PrivateKey, peer_public: bytes, rnd: int) -> bytes:
    """The mask seed ``s_uv`` shared by two clients for round ``rnd``."""
    return crypto.agree(private, peer_public, _round_info("mask", rnd))


def share_key(private: crypto.X25519PrivateKey, peer_public: bytes, rnd: int) -> bytes:
    """The AEAD key two clients use for shares in round ``rnd``."""
    return crypto.agree(private, peer_public, _round_info("share", rnd))


def _ad(rnd: int, sender: int, receiver: int) -> bytes:
    return f"fedloom-secagg/{rnd}/{sender}->{receiver}".encode()


def seal_shares(key: bytes, rnd: int, sender: int, receiver: int, share_b: bytes, share_s: bytes) -> bytes:
    """One sealed share message (fixed length), bound to round, sender and receiver."""
    plain = np.array([sender, receiver], dtype="<i8").tobytes() + share_b + share_s
    return crypto.encrypt(key, plain, _ad(rnd, sender, receiver))


def open_shares(key: bytes, blob: bytes, rnd: int, sender: int, receiver: int) -> tuple[np.ndarray, np.ndarray]:
    """Open a sealed share message; returns the shares of ``b`` and of ``sk_s`` (field elements)."""
    plain = crypto.decrypt(key, blob, _ad(rnd, sender, receiver))
    if len(plain) != _PLAIN_BYTES:
        raise ValidationError("secagg share message has the wrong length")
    ids = np.frombuffer(plain[:16], dtype="<i8")
    if int(ids[0]) != sender or int(ids[1]) != receiver:
        raise ValidationError("secagg share message is addressed to someone else")
    words = np.frombuffer(plain[16:], dtype="<u4").astype(np.int64)
    return words[:SHARE_WORDS], words[SHARE_WORDS:]


def payload(**arrays: np.ndarray) -> dict[str, Parameters]:
    """An ``extras`` dict with the stage payload."""
    return {EXTRA: Parameters(arrays)}


def read_payload(extras: dict[str, Parameters], *names: str) -> list[np.ndarray]:
    """The named arrays of a stage payload, with a clear error when one is missing."""
    body = extras.get(EXTRA)
    if body is None:
        raise ValidationError(f"secagg message has no {EXTRA!r} payload")
    missing = [n for n in names if n not in body]
    if missing:
        raise ValidationError(f"secagg message is missing {missing}")
    return [body[n] for n in names]
