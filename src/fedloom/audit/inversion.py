"""Gradient inversion: what a server that sees one client's update learns about its training data.

Papers: Ligeng Zhu, Zhijian Liu, Song Han, "Deep Leakage from Gradients", NeurIPS 2019,
arXiv:1906.08935 (DLG: L2 gradient matching with L-BFGS); Bo Zhao, Konda Reddy Mopuri, Hakan
Bilen, "iDLG", arXiv:2001.02610 (the label from the last layer's gradient); Jonas Geiping, Hartmut
Bauermeister, Hannah Dröge, Michael Moeller, "Inverting Gradients -- How easy is it to break
privacy in federated learning?", NeurIPS 2020, arXiv:2003.14053 (cosine matching, total variation,
signed Adam steps); Le Trieu Phong et al., "Privacy-Preserving Deep Learning via Additively
Homomorphic Encryption", 2017 (the closed form for a fully connected first layer).

Closed form: for a first layer ``h = W x + b`` and ONE example, ``dL/dW = (dL/dh) x^T`` and
``dL/db = dL/dh``, so ``x = (dL/db . dL/dW) / |dL/db|^2`` exactly. The same holds for the update
of one local SGD step (``-lr`` times the gradient: the ratio cancels ``lr``), so the server needs
neither the learning rate nor an optimizer. With several examples (or the sum of many clients'
updates under SecAgg) the formula returns a weighted mixture of the examples instead.

The optimization attacks (:func:`invert_gradients`) run with torch autograd on any model: they look
for inputs whose gradient (at the model the server sent) matches the observed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedloom.audit.threads import one_thread
from fedloom.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["METHODS", "Reconstruction", "attack_update", "closed_form_linear", "infer_labels", "invert_gradients"]

METHODS = ("closed_form", "dlg", "ig")
"""The inversion attacks: the closed form for a linear first layer, DLG, Inverting Gradients."""


@dataclass
class Reconstruction:
    """What an inversion attack recovered.

    Attributes:
        inputs: ``(batch, features)`` reconstructed rows, on the data's (standardized) scale.
        labels: The recovered labels, one per row.
        method: ``closed_form``, ``dlg`` or ``ig``.
        loss: The final gradient-matching loss (0 for the closed form).
    """

    inputs: np.ndarray
    labels: np.ndarray
    method: str
    loss: float = 0.0


def closed_form_linear(grad_weight: np.ndarray, grad_bias: np.ndarray, last_bias: np.ndarray | None = None
                       ) -> Reconstruction:
    """Recover the one example behind a linear first layer's gradient (or one SGD step's update).

    Args:
        grad_weight: ``(out, features)``: the gradient (or update) of the first layer's weight.
        grad_bias: ``(out,)``: that of its bias.
        last_bias: The gradient (not the update: mind the sign) of the last layer's bias, for the label
            (cross-entropy: the true class is the only negative entry). The first layer's own bias
            when the model is one linear layer (the default).

    Returns:
        The reconstruction (one row) and the label.
    """
    grad_weight, grad_bias = np.asarray(grad_weight, np.float64), np.asarray(grad_bias, np.float64)
    if grad_weight.ndim != 2 or grad_bias.shape != (grad_weight.shape[0],):
        raise ConfigError(f"closed form needs a weight gradient (out, in) and a bias gradient (out,), got "
                          f"{grad_weight.shape} and {grad_bias.shape}")
    norm = float(grad_bias @ grad_bias)
    if norm == 0.0:
        raise ConfigError("the bias gradient is zero: nothing to invert (no training step, or a fully "
                          "clipped/sparsified update)")
    x = (grad_bias @ grad_weight) / norm
    label_source = grad_bias if last_bias is None else np.asarray(last_bias, np.float64)
    return Reconstruction(inputs=x[None, :], labels=np.array([int(np.argmin(label_source))]), method="closed_form")


def infer_labels(last_bias_grad: np.ndarray, batch_size: int) -> np.ndarray:
    """Labels from the last layer's bias gradient (iDLG; for a batch, the most negative entries).

    Under cross-entropy the bias gradient of class ``c`` is ``mean(p_c) - share of c in the batch``:
    the classes present are the negative entries. A batch larger than the number of negative entries
    repeats the most negative ones.
    """
    g = np.asarray(last_bias_grad, np.float64)
    order = np.argsort(g)
    negative = [int(c) for c in order if g[c] < 0] or [int(order[0])]
    return np.array([negative[i % len(negative)] for i in range(batch_size)], dtype=np.int64)


def _total_variation(x: torch.Tensor, image_shape: tuple[int, int, int] | None) -> torch.Tensor:
    import torch

    if image_shape is None:
        return torch.zeros((), dtype=x.dtype)
    img = x.reshape(x.shape[0], *image_shape)
    return (img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., :, 1:] - img[..., :, :-1]).abs().mean()


def invert_gradients(
    model: nn.Module,
    target: Sequence[np.ndarray],
    *,
    batch_size: int = 1,
    labels: np.ndarray | None = None,
    method: str = "ig",
    iterations: int = 200,
    lr: float = 0.1,
    tv: float = 1e-2,
    image_shape: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> Reconstruction:
    """Find inputs whose cross-entropy gradient at ``model`` matches ``target``.

    Args:
        model: The model the server sent (its parameters are the point where the gradient was taken).
        target: The observed gradient, one array per parameter in ``model.parameters()`` order (an
            update of one SGD step is ``-lr`` times that; for ``ig`` the scale does not matter).
        batch_size: How many examples to reconstruct.
        labels: Known labels; by default recovered from the last parameter's gradient (the output bias).
        method: ``ig`` (cosine distance + total variation, signed Adam; Geiping et al.) or ``dlg``
            (squared distance, L-BFGS; Zhu et al.).
        iterations: Optimizer steps.
        lr: The attack's step size (``ig``) or L-BFGS learning rate (``dlg``).
        tv: Weight of the total-variation prior (``ig``, images only).
        image_shape: ``(C, H, W)`` of image rows, for the prior.
        seed: Seed of the random starting point.
    """
    import torch

    if method not in ("ig", "dlg"):
        raise ConfigError(f"unknown inversion method {method!r}; choose 'ig' or 'dlg' (or closed_form_linear)")
    params = [p for p in model.parameters()]
    if len(target) != len(params):
        raise ConfigError(f"the observed gradient has {len(target)} arrays, the model {len(params)} parameters")
    goal = [torch.as_tensor(np.asarray(t), dtype=torch.float32).reshape(p.shape) for t, p in zip(target, params,
                                                                                                  strict=True)]
    if labels is None:
        labels = infer_labels(goal[-1].numpy(), batch_size)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    features = params[0].shape[1] if params[0].ndim == 2 else int(np.prod(image_shape or (1,)))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, features, generator=gen).requires_grad_(True)
    loss_fn = torch.nn.CrossEntropyLoss()
    def total(terms: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(terms)).sum()

    goal_norm = torch.sqrt(total([(g * g).sum() for g in goal]))

    def matching() -> torch.Tensor:
        grads = torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True)
        if method == "dlg":
            return total([((g - t) ** 2).sum() for g, t in zip(grads, goal, strict=True)])
        dot = total([(g * t).sum() for g, t in zip(grads, goal, strict=True)])
        norm = torch.sqrt(total([(g * g).sum() for g in grads]))
        return 1 - dot / (norm * goal_norm + 1e-12) + tv * _total_variation(x, image_shape)

    last = torch.zeros(())
    if method == "dlg":
        opt = torch.optim.LBFGS([x], lr=lr, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = matching()
            loss.backward()
            return loss

        opt.step(closure)
        last = matching().detach()
    else:
        opt_adam = torch.optim.Adam([x], lr=lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt_adam, milestones=[int(iterations * f) for f in (0.375, 0.625, 0.875)], gamma=0.1)
        for _ in range(iterations):
            opt_adam.zero_grad()
            loss = matching()
            loss.backward()
            assert x.grad is not None
            x.grad.sign_()  # signed gradient steps (Geiping et al.)
            opt_adam.step()
            sched.step()
            last = loss.detach()
    return Reconstruction(inputs=x.detach().numpy().astype(np.float64), labels=y.numpy(), method=method,
                          loss=float(last))


def attack_update(
    model: nn.Module,
    parameters: dict[str, np.ndarray],
    update: np.ndarray,
    *,
    method: str = "closed_form",
    batch_size: int = 1,
    lr: float = 0.1,
    iterations: int = 200,
    image_shape: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> Reconstruction:
    """Invert an observed update (flat, in ``parameters``' order) of one SGD step taken at ``parameters``.

    ``closed_form`` uses the first weight/bias pair (the first layer) and the last bias (the label);
    ``ig``/``dlg`` load ``parameters`` into ``model`` and match the gradient ``-update / lr``.
    """
    from fedloom.core.parameters import Parameters
    from fedloom.torch.params import load_parameters

    params = Parameters(parameters)
    if update.size != params.num_elements:
        raise ConfigError(f"the update has {update.size} entries, the model {params.num_elements}")
    grads = params.unflatten(-np.asarray(update, np.float64) / lr)
    names = params.names
    if method == "closed_form":
        first = next((n for n in names if grads[n].ndim == 2), None)
        if first is None:
            raise ConfigError("closed-form inversion needs a fully connected first layer (a 2-D weight)")
        bias = names[names.index(first) + 1] if names.index(first) + 1 < len(names) else None
        if bias is None or grads[bias].ndim != 1:
            raise ConfigError(f"closed-form inversion needs a bias after {first!r}")
        last = [n for n in names if grads[n].ndim == 1][-1]
        return closed_form_linear(grads[first], grads[bias], grads[last])
    load_parameters(model, params)
    order = [n for n, _ in model.named_parameters()]
    with one_thread():
        return invert_gradients(model, [grads[n] for n in order], batch_size=batch_size, method=method,
                                iterations=iterations, image_shape=image_shape, seed=seed)
