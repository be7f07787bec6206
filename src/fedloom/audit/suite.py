"""The attacks end to end on arrays: what ``fedloom audit privacy`` and the benchmark run.

:func:`inversion_suite` attacks one FedSGD round under every protection and measures the
reconstructions; :func:`membership_suite` runs the loss-threshold attack (and LiRA with shadow
models) against a trained model. Both take data and a model factory, never a run directory (the
edge, :mod:`fedloom.runs.privacy_audit`, reads those).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fedloom.audit.inversion import Reconstruction, attack_update
from fedloom.audit.membership import Predict, Roc, lira_scores, loss_scores, roc, train_shadows
from fedloom.audit.protections import PROTECTIONS, observe
from fedloom.audit.quality import label_recovery, mse, psnr, ssim
from fedloom.audit.threads import one_thread
from fedloom.core.parameters import Parameters
from fedloom.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["InversionResult", "as_json", "inversion_suite", "membership_suite", "predictor", "train_model"]


@dataclass
class InversionResult:
    """Reconstructions per protection (rows matched to the targets) and their quality."""

    originals: np.ndarray
    labels: np.ndarray
    reconstructions: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def _attack(model_fn: Callable[[], nn.Module], params: Parameters, update: np.ndarray, method: str, lr: float,
            image_shape: tuple[int, int, int] | None, iterations: int, seed: int, features: int) -> Reconstruction:
    try:
        return attack_update(model_fn(), dict(params.items()), update, method=method, lr=lr, iterations=iterations,
                             image_shape=image_shape, seed=seed)
    except ConfigError:  # e.g. top-k zeroed the first layer's bias: the attacker gets nothing, guesses zeros
        return Reconstruction(inputs=np.zeros((1, features)), labels=np.array([-1]), method=method)


def inversion_suite(
    model_fn: Callable[[], nn.Module],
    parameters: Parameters,
    targets: Sequence[tuple[np.ndarray, int]],
    others: Sequence[tuple[np.ndarray, int]],
    *,
    protections: Sequence[str] = PROTECTIONS,
    method: str = "closed_form",
    cohort: int = 10,
    lr: float = 0.1,
    noise_multiplier: float = 1.0,
    clip: float = 1.0,
    topk_fraction: float = 0.01,
    iterations: int = 200,
    image_shape: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> InversionResult:
    """Attack each target's one-example update under each protection, at ``parameters``.

    Each target trains alone (``none``, local DP, DP-SGD, codecs) or with ``cohort - 1`` rows of
    ``others`` as the rest of its cohort (SecAgg, central DP). Quality is PSNR and SSIM against the
    target for images, MSE for tabular rows; for cohort protections the best PSNR against ANY
    cohort member is reported too (``psnr_any``: whether the sum leaks someone).
    """
    if not targets:
        raise ConfigError("give at least one example to attack")
    features = int(np.asarray(targets[0][0]).size)
    originals = np.stack([np.asarray(x, np.float64).ravel() for x, _ in targets])
    labels = np.array([int(y) for _, y in targets])
    out = InversionResult(originals=originals, labels=labels)
    shape2d = (image_shape[1], image_shape[2]) if image_shape else None
    with one_thread():
        for protection in protections:
            _one_protection(out, protection, model_fn, parameters, targets, others, cohort, lr, noise_multiplier, clip,
                            topk_fraction, method, iterations, image_shape, shape2d, seed, features)
    return out


def _one_protection(out: InversionResult, protection: str, model_fn: Callable[[], nn.Module], parameters: Parameters,
                    targets: Sequence[tuple[np.ndarray, int]], others: Sequence[tuple[np.ndarray, int]], cohort: int,
                    lr: float, noise_multiplier: float, clip: float, topk_fraction: float, method: str,
                    iterations: int, image_shape: tuple[int, int, int] | None, shape2d: tuple[int, int] | None,
                    seed: int, features: int) -> None:
    """Attack every target under ``protection``; store rows and mean quality in ``out``."""
    originals, labels = out.originals, out.labels
    rows: list[np.ndarray] = []
    found: list[int] = []
    stats: dict[str, list[float]] = {"psnr": [], "ssim": [], "mse": [], "psnr_any": []}
    for t, (x, y) in enumerate(targets):
        mates = [others[(t * (cohort - 1) + j) % len(others)] for j in range(cohort - 1)] if others else []
        members = [(x, y), *mates] if protection in ("secagg", "central_dp") else [(x, y)]
        data = [(np.asarray(a, np.float32).reshape(1, -1), np.array([int(b)], np.int64)) for a, b in members]
        obs = observe(protection, model_fn=model_fn, parameters=parameters, cohort=data, lr=lr,
                      noise_multiplier=noise_multiplier, clip=clip, topk_fraction=topk_fraction, seed=seed + t)
        rec = _attack(model_fn, parameters, obs.update, method, lr, image_shape, iterations, seed + t, features)
        guess = rec.inputs[0]
        rows.append(guess)
        found.append(int(rec.labels[0]))
        original = originals[t]
        stats["mse"].append(mse(original, guess))
        if image_shape is not None:
            stats["psnr"].append(psnr(original, guess))
            stats["ssim"].append(ssim(original, guess, shape2d))
            stats["psnr_any"].append(max(psnr(np.ravel(a), guess) for a, _ in members))
    out.reconstructions[protection] = np.stack(rows)
    summary = {k: float(np.mean(v)) for k, v in stats.items() if v}
    summary["label_recovery"] = label_recovery(labels, np.array(found))
    out.metrics[protection] = summary


def train_model(model_fn: Callable[[], nn.Module], x: np.ndarray, y: np.ndarray, *, epochs: int = 20,
                lr: float = 0.1, batch_size: int = 32, seed: int = 0) -> nn.Module:
    """Plain minibatch SGD on ``(x, y)`` with cross-entropy: the shadow models' recipe."""
    import torch

    torch.manual_seed(seed)
    model = model_fn()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    with one_thread():
        for _ in range(epochs):
            order = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), batch_size):
                idx = order[i:i + batch_size]
                opt.zero_grad()
                loss_fn(model(xt[idx]), yt[idx]).backward()
                opt.step()
    return model


def predictor(model: nn.Module) -> Predict:
    """Class probabilities of a classifier, as numpy."""
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad(), one_thread():
            return torch.softmax(model(torch.as_tensor(x, dtype=torch.float32)), dim=1).numpy().astype(np.float64)

    return predict


def membership_suite(
    predict: Predict,
    members: tuple[np.ndarray, np.ndarray],
    nonmembers: tuple[np.ndarray, np.ndarray],
    *,
    shadow_train: Callable[[np.ndarray, np.ndarray, int], Predict] | None = None,
    shadows: int = 0,
    seed: int = 0,
) -> dict[str, Roc]:
    """ROC of the loss-threshold attack, and of LiRA when ``shadows > 0`` and a recipe is given.

    Members and non-members are balanced (the larger set is subsampled) so the AUC and TPR read alike.
    """
    rng = np.random.default_rng(seed)
    n = min(len(members[1]), len(nonmembers[1]))
    if n == 0:
        raise ConfigError("membership inference needs members and non-members")
    mi = rng.choice(len(members[1]), n, replace=False)
    ni = rng.choice(len(nonmembers[1]), n, replace=False)
    xm, ym = members[0][mi], members[1][mi]
    xn, yn = nonmembers[0][ni], nonmembers[1][ni]
    curves = {"loss threshold": roc(loss_scores(predict, xm, ym), loss_scores(predict, xn, yn))}
    if shadows > 0 and shadow_train is not None:
        x, y = np.concatenate([xm, xn]), np.concatenate([ym, yn])
        inside, conf = train_shadows(shadow_train, x, y, shadows=shadows, seed=seed)
        probs = np.asarray(predict(x), np.float64)[np.arange(len(y)), y.astype(int)]
        scores = lira_scores(probs, inside, conf)
        curves[f"LiRA ({shadows} shadows)"] = roc(scores[:n], scores[n:])
    return curves


def as_json(result: InversionResult | dict[str, Roc]) -> dict[str, Any]:
    """The numbers of a suite's result, for ``audit_*.json``."""
    if isinstance(result, InversionResult):
        return {"labels": result.labels.tolist(), "protections": result.metrics}
    return {name: curve.as_dict() for name, curve in result.items()}
