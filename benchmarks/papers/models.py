"""The FedAvg paper's MNIST models (McMahan et al. 2017, Section 3), as ``--model`` factories.

* ``two_nn``: the "2NN", a multilayer perceptron with two hidden layers of 200 units and ReLU
  (199,210 parameters on 28x28 inputs);
* the paper's CNN (5x5 conv 32, 2x2 max pool, 5x5 conv 64, 2x2 max pool, 512 fully connected,
  softmax) is fedloom's built-in ``cnn`` scaled down (16 and 32 channels, 128 units).
"""

from __future__ import annotations

from typing import Any


def two_nn(*, num_features: int, num_outputs: int, **_: Any) -> Any:
    """784 -> 200 -> 200 -> 10 with ReLU: the paper's 2NN."""
    from torch import nn

    return nn.Sequential(nn.Linear(num_features, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                         nn.Linear(200, num_outputs))
