"""FedAvg over CKKS-encrypted models: the server adds ciphertexts and never sees a model.

Keys: clients share the secret context, the server gets only the public one (what
``fedloom he-keys`` writes to secret.tenseal / public.tenseal). Since the server cannot evaluate the
model, clients evaluate it. Needs ``pip install 'fedloom[he]'``.

Run: python examples/encrypted_aggregation.py
"""

from __future__ import annotations

import torch
from torch import nn

from fedloom import TorchClient, load_dataset, partition, simulate
from fedloom.privacy.he import HEClient, HEFedAvg, load_context, make_context, public_bytes

data = load_dataset("digits", seed=0)
parts = partition(data.y_train, 5, method="iid", seed=0)
x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
secret = make_context(poly_degree=8192, scale_bits=40)  # the clients' shared secret context
public = load_context(public_bytes(secret))  # the server's copy: no secret key


def client_fn(cid: str) -> HEClient:
    idx = torch.from_numpy(parts[int(cid)])
    cut = len(idx) * 4 // 5  # local train / test split for federated evaluation
    inner = TorchClient(model_fn=lambda: nn.Linear(64, 10), train_data=(x[idx[:cut]], y[idx[:cut]]),
                        test_data=(x[idx[cut:]], y[idx[cut:]]), lr=0.1, batch_size=16)
    return HEClient(inner, context=secret)


def main(rounds: int = 10) -> dict[str, float]:
    torch.manual_seed(0)
    strategy = HEFedAvg(context=public, fraction_evaluate=1.0)
    result = simulate(client_fn, num_clients=5, strategy=strategy, rounds=rounds)
    assert not strategy.context.is_private() and result.parameters.names == []  # the server has no model
    return result.final


if __name__ == "__main__":
    final = main()
    print(f"bytes sent per client per round: {final['bytes_up_per_client']:,.0f} (plaintext: 2,600)")
    print(f"federated accuracy: {final['fed_accuracy']:.3f}")
