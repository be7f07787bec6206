"""The scenario registries: simulated attacks (``--attack``) and straggler modes (``--straggler-mode``)."""

from __future__ import annotations

from fedloom.core.registry import Registry

__all__ = ["ATTACKS", "STRAGGLER_MODES"]

ATTACKS: Registry[str] = Registry("attack")
ATTACKS.register("none", "none", help="Every client is honest.")
ATTACKS.register("sign_flip", "sign_flip", help="Send -scale times the honest update.")
ATTACKS.register("gaussian", "gaussian", help="Send N(0, scale^2) noise instead of an update.")
ATTACKS.register("scale", "scale", help="Send scale times the honest update (boosting; the benchmark uses 1000).")
ATTACKS.register("huge_weight", "huge_weight",
                 help="Send the flipped honest update and claim 10^15 training examples (the weight is the lever).")
ATTACKS.register("label_flip", "label_flip", help="Train honestly on flipped labels y -> C-1-y (data poisoning).")
ATTACKS.register("alie", "alie", help="'A little is enough' (Baruch et al. 2019): colluding mean - z std.")

STRAGGLER_MODES: Registry[str] = Registry("straggler mode", plural="straggler_modes")
STRAGGLER_MODES.register("epochs", "epochs", help="A straggler trains a random number of epochs in [1, E).")
STRAGGLER_MODES.register("drop", "drop", help="A straggler always fails its task.")
