"""The FedAvg paper's MNIST models (McMahan et al. 2017, Section 3), as ``--model`` factories.

* ``two_nn``: the "2NN", a multilayer perceptron with two hidden layers of 200 units and ReLU
  (199,210 parameters on 28x28 inputs);
* ``paper_cnn``: the paper's CNN, two 5x5 convolutions (32 then 64 channels, each followed by ReLU
  and 2x2 max pooling), a fully connected layer of 512 units with ReLU and a softmax output
  (1,663,370 parameters on 28x28 inputs). The paper does not say how the convolutions are padded;
  we pad to keep the size ("same"), as TensorFlow's MNIST tutorial of the time did. fedloom's
  built-in ``cnn`` has the same layout scaled down (16 and 32 channels, 128 units: 215,370
  parameters), so it is not the paper's model;
* ``small_cnn``: fedloom's built-in ``cnn`` on 28 x 28 rows (the dataset file does not carry the image shape),
  the model the CNN rows of the FedSGD table were run with: the paper's CNN costs about 4 times as much per
  example, more than the shared 2-core machine could give (see RESULTS.md).
"""

from __future__ import annotations

from typing import Any


def two_nn(*, num_features: int, num_outputs: int, **_: Any) -> Any:
    """784 -> 200 -> 200 -> 10 with ReLU: the paper's 2NN."""
    from torch import nn

    return nn.Sequential(nn.Linear(num_features, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                         nn.Linear(200, num_outputs))


def paper_cnn(*, num_features: int, num_outputs: int, **_: Any) -> Any:
    """The paper's CNN on square single-channel images given as flat rows (784 = 28 x 28)."""
    from torch import nn

    side = int(round(num_features ** 0.5))
    if side * side != num_features or side % 4:
        raise ValueError(f"paper_cnn needs square images with a side divisible by 4; got {num_features} features")
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * (side // 4) ** 2, 512), nn.ReLU(),
        nn.Linear(512, num_outputs),
    )


def small_cnn(*, num_features: int, num_outputs: int, **_: Any) -> Any:
    """fedloom's built-in ``cnn`` (the paper's layout with 16 and 32 channels and 128 units) on square images."""
    from fedloom.models import cnn

    side = int(round(num_features ** 0.5))
    return cnn(num_features=num_features, num_outputs=num_outputs, image_shape=(1, side, side))
