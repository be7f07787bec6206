"""Privacy you can measure: attacks that audit a run.

* :mod:`~fedloom.audit.inversion`: gradient inversion (closed form for a linear first layer, DLG,
  Inverting Gradients) of what a server sees under each protection (:mod:`~fedloom.audit.protections`).
* :mod:`~fedloom.audit.membership`: loss-threshold and LiRA membership inference, ROC/AUC/TPR at low FPR.
* :mod:`~fedloom.audit.canaries`: one-run auditing (Steinke, Nasr, Jagielski 2023): an empirical
  lower bound on epsilon to set beside the accountant's.
* :mod:`~fedloom.audit.report`: pictures of reconstructions, ROC curves, epsilon plots.

Names load on first use (nothing heavy at import). See ``docs/privacy-audit.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.audit.canaries import CanaryAudit, audit_central_dp, epsilon_lower_bound, p_value
    from fedloom.audit.inversion import attack_update, closed_form_linear, invert_gradients
    from fedloom.audit.membership import lira_scores, loss_scores, roc
    from fedloom.audit.suite import inversion_suite, membership_suite

_EXPORTS = {
    "CanaryAudit": "fedloom.audit.canaries",
    "audit_central_dp": "fedloom.audit.canaries",
    "epsilon_lower_bound": "fedloom.audit.canaries",
    "p_value": "fedloom.audit.canaries",
    "attack_update": "fedloom.audit.inversion",
    "closed_form_linear": "fedloom.audit.inversion",
    "invert_gradients": "fedloom.audit.inversion",
    "lira_scores": "fedloom.audit.membership",
    "loss_scores": "fedloom.audit.membership",
    "roc": "fedloom.audit.membership",
    "inversion_suite": "fedloom.audit.suite",
    "membership_suite": "fedloom.audit.suite",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
