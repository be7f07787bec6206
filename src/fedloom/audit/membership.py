"""Membership inference against a trained model: was this record in the training data?

Papers: Samuel Yeom, Irene Giacomelli, Matt Fredrikson, Somesh Jha, "Privacy Risk in Machine
Learning: Analyzing the Connection to Overfitting", CSF 2018 (the loss-threshold attack); Nicholas
Carlini, Steve Chien, Milad Nasr, Shuang Song, Andreas Terzis, Florian Tramèr, "Membership
Inference Attacks From First Principles", IEEE S&P 2022, arXiv:2112.03570 (LiRA, and reporting
the TPR at a low FPR rather than only the AUC).

Scores are "higher means member". :func:`loss_scores` is the negative loss of each record;
:func:`lira_scores` (offline, and online when shadow models trained WITH the record exist) fits a
Gaussian to the logit-scaled confidence ``log(p / (1 - p))`` of the true class under shadow models
that did not (and did) train on the record, and scores the target model's confidence by the
likelihood ratio. :func:`roc` turns scores of members and non-members into the ROC curve, AUC and
TPR at fixed low FPRs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fedloom.errors import ConfigError

__all__ = ["Roc", "confidences", "lira_scores", "loss_scores", "roc", "train_shadows"]

LOW_FPRS = (0.001, 0.01, 0.1)
"""The false-positive rates at which the true-positive rate is reported."""

Predict = Callable[[np.ndarray], np.ndarray]
"""Maps rows ``(n, features)`` to class probabilities ``(n, classes)``."""


@dataclass
class Roc:
    """An ROC curve and its summaries.

    Attributes:
        fpr: False-positive rates, increasing from 0 to 1.
        tpr: The matching true-positive rates.
        auc: Area under the curve (0.5: the attacker guesses).
        tpr_at: TPR at each of :data:`LOW_FPRS` (the largest TPR with FPR at most that value).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    tpr_at: dict[float, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return {"auc": self.auc, **{f"tpr_at_fpr_{f:g}": v for f, v in self.tpr_at.items()}}


def roc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> Roc:
    """ROC of a score that should be higher for members (ties count half in the AUC)."""
    a, b = np.asarray(member_scores, np.float64), np.asarray(nonmember_scores, np.float64)
    if a.size == 0 or b.size == 0:
        raise ConfigError("membership inference needs at least one member and one non-member")
    scores = np.concatenate([a, b])
    truth = np.concatenate([np.ones(a.size), np.zeros(b.size)])
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], truth[order]
    distinct = np.flatnonzero(np.diff(s)) if s.size > 1 else np.array([], dtype=int)
    cut = np.concatenate([distinct, [s.size - 1]])
    tp, fp = np.cumsum(t)[cut], np.cumsum(1 - t)[cut]
    tpr = np.concatenate([[0.0], tp / a.size])
    fpr = np.concatenate([[0.0], fp / b.size])
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    tpr_at = {f: float(tpr[fpr <= f].max()) for f in LOW_FPRS}
    return Roc(fpr=fpr, tpr=tpr, auc=auc, tpr_at=tpr_at)


def confidences(predict: Predict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The probability each row's true class gets."""
    probs = np.asarray(predict(x), np.float64)
    return probs[np.arange(len(y)), np.asarray(y, int)]


def loss_scores(predict: Predict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Yeom et al.: minus the cross-entropy loss of each record (members tend to have a low loss)."""
    return np.log(np.clip(confidences(predict, x, y), 1e-300, 1.0))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def train_shadows(train: Callable[[np.ndarray, np.ndarray, int], Predict], x: np.ndarray, y: np.ndarray, *,
                  shadows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train ``shadows`` models, each on a random half of ``(x, y)``.

    Args:
        train: ``(x, y, seed) -> predict``, the target's training recipe.
        x, y: The pool of records (targets' members and non-members alike).
        shadows: Number of shadow models.
        seed: Seed of the halves.

    Returns:
        ``inside``: ``(shadows, n)`` booleans (record i in shadow k's data) and ``conf``:
        ``(shadows, n)`` each shadow's logit-scaled confidence on each record.
    """
    if shadows < 1:
        raise ConfigError(f"LiRA needs at least one shadow model, got {shadows}")
    rng = np.random.default_rng(seed)
    inside = np.zeros((shadows, len(x)), dtype=bool)
    conf = np.zeros((shadows, len(x)))
    for k in range(shadows):
        inside[k] = rng.random(len(x)) < 0.5
        predict = train(x[inside[k]], y[inside[k]], seed + 1 + k)
        conf[k] = _logit(confidences(predict, x, y))
    return inside, conf


def lira_scores(target_conf: np.ndarray, inside: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """LiRA's per-record likelihood ratio (log scale) of "member" against "non-member".

    Online when a record has shadow models both with and without it (per-record Gaussians, the
    variance pooled over records as the paper does with few shadows); offline (the one-sided test
    against the "out" Gaussian) for records without "in" shadows.

    Args:
        target_conf: The target model's true-class probability of each record.
        inside: From :func:`train_shadows`.
        conf: From :func:`train_shadows`.
    """
    from scipy.stats import norm

    obs = _logit(np.asarray(target_conf, np.float64))
    n = obs.size
    out_mask, in_mask = ~inside, inside
    out_count, in_count = out_mask.sum(0), in_mask.sum(0)
    mu_out = np.where(out_count > 0, (conf * out_mask).sum(0) / np.maximum(out_count, 1), conf.mean(0))
    mu_in = np.where(in_count > 0, (conf * in_mask).sum(0) / np.maximum(in_count, 1), mu_out)
    res_out = (conf - mu_out) * out_mask
    res_in = (conf - mu_in) * in_mask
    sd_out = np.sqrt(max((res_out ** 2).sum() / max(out_mask.sum() - n, 1), 1e-6))
    sd_in = np.sqrt(max((res_in ** 2).sum() / max(in_mask.sum() - n, 1), 1e-6))
    online = norm.logpdf(obs, mu_in, sd_in) - norm.logpdf(obs, mu_out, sd_out)
    offline = norm.logcdf(obs, mu_out, sd_out)
    return np.where(in_count > 0, online, offline)
