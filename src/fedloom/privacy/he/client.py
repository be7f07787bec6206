"""The client side of encrypted aggregation: decrypt the global model, encrypt the weighted update.

:class:`HEClient` wraps any :class:`~fedloom.core.client.Client` and holds the *secret* CKKS
context that all clients share. It receives either the public initial model (round 1) or the
encrypted aggregate ``Enc(sum_i n_i w_i)`` with the public total weight ``sum_i n_i``, decrypts and
divides, lets the inner client train or evaluate, and returns ``Enc(n_i w_i)`` as uint8
ciphertexts in ``FitRes.extras["he"]`` with empty plaintext parameters: nothing the server can read
but the example count it already gets in plain FedAvg.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.errors import ConfigError, ValidationError
from fedloom.privacy.he.ciphertext import decrypt_vector, encrypt_vector
from fedloom.privacy.he.context import key_id

__all__ = ["HEClient", "HE_EXTRA", "KEY_ID_KEY", "WEIGHT_KEY", "WEIGHTED_KEY"]

HE_EXTRA = "he"
"""Name of the client's ciphertext payload in ``FitRes.extras``."""

WEIGHT_KEY = "he.weight"
"""Array with the total weight of the encrypted aggregate, broadcast beside its ciphertexts."""

KEY_ID_KEY = "he_key_id"
"""Config key: fingerprint of the keys the server's aggregate is encrypted under."""

WEIGHTED_KEY = "he_weighted"
"""Config key: weight the update by the number of examples (else by one)."""


class HEClient(Client):
    """Wrap ``inner`` so that the server only ever handles its update encrypted.

    Args:
        inner: The client that trains (e.g. a :class:`~fedloom.TorchClient`).
        context: The shared *secret* TenSEAL CKKS context.
        key_fingerprint: ``key_id(context)`` if already known (computed on first use otherwise).
    """

    def __init__(self, inner: Client, *, context: Any, key_fingerprint: str | None = None) -> None:
        if not context.is_private():
            raise ConfigError("an HE client needs the secret context (secret.tenseal), not the public one")
        self.inner = inner
        self.context = context
        self._template: Parameters | None = None
        self._key_id = key_fingerprint

    def get_parameters(self, config: Config) -> Parameters:
        return self.inner.get_parameters(config)

    def open(self, parameters: Parameters, config: Config | None = None) -> Parameters:
        """The plaintext model in ``parameters``: as is, or decrypted from the encrypted aggregate.

        Raises:
            ValidationError: the aggregate is encrypted under other keys (``config["he_key_id"]``
                differs: decrypting would give garbage, not an error) or is malformed.
        """
        if WEIGHT_KEY not in parameters:
            return parameters
        theirs = (config or {}).get(KEY_ID_KEY)
        if theirs is not None:
            if self._key_id is None:
                self._key_id = key_id(self.context)
            if theirs != self._key_id:
                raise ValidationError(
                    f"the global model is encrypted under other keys (key id {theirs}, ours {self._key_id}); "
                    "server and clients must use the same `fedloom he-keys` output"
                )
        if self._template is None:
            self._template = self.inner.get_parameters({})
        weight = parameters[WEIGHT_KEY].reshape(-1)
        if weight.size != 1 or not float(weight[0]) > 0:
            raise ValidationError(f"{WEIGHT_KEY} must hold one positive total weight")
        cipher = Parameters({k: v for k, v in parameters.items() if k != WEIGHT_KEY})
        vector = decrypt_vector(self.context, cipher, self._template.num_elements) / float(weight[0])
        return self._template.unflatten(vector)

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return self.fit_task(FitIns(parameters, config))

    def fit_task(self, ins: FitIns) -> FitRes:
        config = ins.config
        res = self.inner.fit_task(dataclasses.replace(ins, parameters=self.open(ins.parameters, config)))
        weight = float(res.num_examples) if bool(config.get(WEIGHTED_KEY, True)) else 1.0
        cipher = encrypt_vector(self.context, weight * res.parameters.flatten())
        return FitRes(Parameters(), res.num_examples, dict(res.metrics), {**res.extras, HE_EXTRA: cipher})

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return self.inner.evaluate(self.open(parameters, config), config)
