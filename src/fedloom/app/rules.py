"""The rules between features, in one table, checked when a configuration is validated.

A section checks its own values (``clients >= 1``); a rule here involves two or more features
(secure aggregation and compression, HE and central DP, ...). Each rule is a :class:`Rule`: a
predicate that is true when the configuration breaks it, and the message that says what to do.
Every rule fires at validation time, before any data is loaded or model built.

Example:
    >>> from fedloom.app.config import RunConfig
    >>> broken(RunConfig(secagg=True, compression="q8"))[0].name
    'secagg-compression'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fedloom.errors import ConfigError

RunConfig = Any
"""A :class:`fedloom.app.config.RunConfig` (not imported: the config module imports this one)."""

__all__ = ["RULES", "Rule", "broken", "check_rules", "cohort_size"]


@dataclass(frozen=True)
class Rule:
    """A constraint between features: ``violated(cfg)`` is true when ``cfg`` breaks it."""

    name: str
    violated: Callable[[RunConfig], bool]
    message: Callable[[RunConfig], str]


def cohort_size(cfg: RunConfig) -> int:
    """Clients sampled per round (fixed-size sampling, as ``sample_clients`` does)."""
    f = cfg.federation
    return min(f.clients, max(min(f.min_clients, f.clients), math.ceil(f.fraction * f.clients - 1e-9)))


_AGGREGATOR_NAMES = {"krum": "Krum", "multikrum": "Multi-Krum", "bulyan": "Bulyan", "median": "coordinate median",
                     "trimmed_mean": "trimmed mean"}

_PRESETS = ("fedavgm", "fedadam", "fedyogi", "fedadagrad", "scaffold")
"""Strategies that are FedAvg with a server optimizer of their own (no ``--server-opt`` on top)."""


def _central_dp(cfg: RunConfig) -> bool:
    return cfg.privacy.dp in ("central", "central-adaptive")

_HEAD_METHODS = ("fedper", "fedrep")
"""Personalization methods that keep a head on each client and federate the body only."""


def _personal(cfg: RunConfig) -> str:
    return str(cfg.personal.personalization)


def _plain_mean(cfg: RunConfig) -> bool:
    return _mean(cfg) and cfg.algorithm.clip_update_norm == 0


def _family(cfg: RunConfig) -> str:
    from fedloom.app.tabular import model_family

    return model_family(cfg)


def _tree_strategy(cfg: RunConfig) -> bool:
    from fedloom.app.tabular import TREE_STRATEGIES

    return cfg.algorithm.strategy in TREE_STRATEGIES


def _tree_layers(cfg: RunConfig) -> list[str]:
    """The update layers a tree run was asked for (none of them applies to trees or histograms yet)."""
    asked = {"--secagg": cfg.privacy.secagg, f"--dp {cfg.privacy.dp}": cfg.privacy.dp != "none",
             "--dp-sgd": cfg.privacy.dp_sgd, "--he": cfg.encryption.he,
             f"--compression {cfg.communication.compression}": cfg.communication.compression != "none",
             "--compress-broadcast": cfg.communication.compress_broadcast,
             "--clip-update-norm": cfg.algorithm.clip_update_norm > 0}
    return [name for name, on in asked.items() if on]


def _mean(cfg: RunConfig) -> bool:
    return cfg.algorithm.effective_aggregator() == "mean"


def _probe(cfg: RunConfig) -> object | None:
    """An instance of the configured strategy (no data needed), or ``None`` for a plugin strategy that
    needs more than its options."""
    from fedloom.strategies import STRATEGIES, WeightedMean

    try:
        return STRATEGIES.get(cfg.algorithm.strategy)(cfg.algorithm, {"aggregator": WeightedMean()})
    except ConfigError:
        raise
    except Exception:
        return None


def _async(cfg: RunConfig) -> bool:
    return bool(cfg.asynchrony.mode == "async")


def _fedavg_family(cfg: RunConfig) -> bool:
    """Whether the configured strategy is FedAvg or builds on it (a probe instance, no data needed)."""
    from fedloom.strategies import FedAvg

    return isinstance(_probe(cfg), FedAvg)


def _scaffold(cfg: RunConfig) -> bool:
    """Whether the configured strategy is SCAFFOLD (or builds on it): it needs each client's control-variate change."""
    from fedloom.strategies import Scaffold

    return isinstance(_probe(cfg), Scaffold)


def _secagg_quantizer_fails(cfg: RunConfig) -> str | None:
    from fedloom.privacy.secagg import Quantizer

    try:
        Quantizer(cfg.privacy.secagg_bits, cohort_size(cfg), 1.0)
    except ConfigError as exc:
        return str(exc)
    return None


RULES: list[Rule] = [
    Rule("dp-needs-noise",
         lambda c: c.privacy.dp != "none" and c.privacy.noise_multiplier == 0 and c.privacy.target_epsilon == 0,
         lambda c: f"--dp {c.privacy.dp} needs --noise-multiplier > 0 or a --target-epsilon to calibrate it"),
    Rule("target-epsilon-needs-dp",
         lambda c: c.privacy.dp == "none" and c.privacy.target_epsilon > 0,
         lambda c: "--target-epsilon needs --dp central, central-adaptive or local"),
    Rule("secagg-needs-two-clients",
         lambda c: c.privacy.secagg and c.federation.clients < 2,
         lambda c: "--secagg needs at least 2 clients"),
    Rule("secagg-ring",
         lambda c: c.privacy.secagg and _secagg_quantizer_fails(c) is not None,
         lambda c: str(_secagg_quantizer_fails(c))),
    Rule("secagg-compression",
         lambda c: c.privacy.secagg and c.communication.compression != "none",
         lambda c: (f"--compression {c.communication.compression} cannot be combined with secure aggregation: "
                    "SecAgg+ already quantizes updates into its ring (that is its compression); use "
                    "--compression none")),
    Rule("secagg-needs-mean",
         lambda c: c.privacy.secagg and not (_fedavg_family(c) and _mean(c)),
         lambda c: (f"--secagg gives the server only the sum of the updates; strategy {c.algorithm.strategy!r} "
                    f"with aggregator {c.algorithm.effective_aggregator()!r} needs individual updates (robust "
                    "aggregators cannot run on a single sum). Use a FedAvg-family strategy with the weighted mean.")),
    Rule("secagg-clip-update-norm",
         lambda c: c.privacy.secagg and c.algorithm.clip_update_norm > 0,
         lambda c: ("--clip-update-norm bounds each update on the server, which under --secagg only sees their sum; "
                    "SecAgg+ clients already clip their own update to --clip before masking it: set --clip "
                    f"{c.algorithm.clip_update_norm:g} instead")),
    Rule("secagg-scaffold",
         lambda c: c.privacy.secagg and _scaffold(c),
         lambda c: ("--secagg cannot run SCAFFOLD: the server would get only the sum of the model updates, but "
                    "SCAFFOLD's server needs every client's control-variate change (delta c_i) beside it, so "
                    "every round would fail. Use --strategy fedavg or fedprox with --secagg, or SCAFFOLD "
                    "without secure aggregation")),
    Rule("central-dp-needs-fedavg",
         lambda c: _central_dp(c) and not _fedavg_family(c),
         lambda c: f"--dp {c.privacy.dp} wraps FedAvg-family strategies, not {c.algorithm.strategy!r}"),
    Rule("central-dp-aggregator",
         lambda c: _central_dp(c) and _fedavg_family(c) and not _mean(c),
         lambda c: (f"--dp {c.privacy.dp} cannot use the aggregator {c.algorithm.effective_aggregator()!r} "
                    f"({_AGGREGATOR_NAMES.get(c.algorithm.effective_aggregator(), 'robust aggregation')}): "
                    "DP-FedAvg clips every update to --clip and noises their plain sum, so the aggregator would "
                    "be dropped without a word (and a selection of individual updates would break the "
                    "sensitivity the noise is calibrated to). Use --aggregator mean with central DP (each "
                    "client's influence is already bounded by --clip), or the robust aggregator with --dp local "
                    "or without DP")),
    Rule("central-dp-clip-update-norm",
         lambda c: _central_dp(c) and _fedavg_family(c) and _mean(c) and c.algorithm.clip_update_norm > 0,
         lambda c: (f"--clip-update-norm would be ignored under --dp {c.privacy.dp}: central DP clips every "
                    f"update to its own --clip norm; set --clip {c.algorithm.clip_update_norm:g} instead")),
    Rule("central-dp-scaffold",
         lambda c: _central_dp(c) and _scaffold(c),
         lambda c: (f"--dp {c.privacy.dp} cannot run SCAFFOLD: central DP clips and noises only the model "
                    "update, while SCAFFOLD's server control variate moves with every client's delta c_i, which "
                    "central DP would have to release unprotected (today it stays at zero: SCAFFOLD without its "
                    "correction). Use --strategy fedavg, fedprox or fedavgm with central DP, or SCAFFOLD "
                    "without it")),
    Rule("central-dp-sampling",
         lambda c: _central_dp(c) and c.algorithm.sampling not in ("", "poisson"),
         lambda c: (f"--dp {c.privacy.dp} samples each round's cohort by Poisson sampling (each client with "
                    "probability q = cohort / clients), which its privacy accountant assumes; --sampling "
                    f"{c.algorithm.sampling} would not be what is accounted. Use --sampling poisson (or leave "
                    "--sampling unset) with central DP")),
    Rule("sampling-size-secure-sum",
         lambda c: c.algorithm.sampling == "size" and (c.privacy.secagg or c.encryption.he),
         lambda c: (f"--sampling size counts a client drawn twice twice, but under "
                    f"{'--secagg' if c.privacy.secagg else '--he'} the server only gets the sum of the updates "
                    "and cannot weight one of them; use --sampling uniform or poisson")),
    Rule("he-sampling",
         lambda c: c.encryption.he and c.algorithm.sampling == "poisson",
         lambda c: "--he samples clients uniformly (HEFedAvg); --sampling poisson is not supported with --he"),
    Rule("server-opt-preset",
         lambda c: bool(c.algorithm.server_opt) and c.algorithm.strategy in _PRESETS,
         lambda c: (f"--strategy {c.algorithm.strategy} brings its own server optimizer; --server-opt "
                    f"{c.algorithm.server_opt} composes with fedavg, fedprox and the robust aliases "
                    f"(e.g. --strategy fedavg --server-opt {c.algorithm.server_opt})")),
    Rule("he-server-opt",
         lambda c: c.encryption.he and bool(c.algorithm.server_opt),
         lambda c: "--he cannot use a server optimizer: the server holds only the encrypted sum, never the update"),
    Rule("dp-sgd-scaffold",
         lambda c: c.privacy.dp_sgd and c.algorithm.strategy == "scaffold",
         lambda c: ("--dp-sgd cannot run with --strategy scaffold: Opacus trains on clipped, noised per-example "
                    "gradients of the data loss, which drops SCAFFOLD's control-variate correction")),
    Rule("he-strategy",
         lambda c: c.encryption.he and c.algorithm.strategy != "fedavg",
         lambda c: (f"--he works with --strategy fedavg only, got {c.algorithm.strategy!r}: the server can only add "
                    "ciphertexts, so server optimizers and control variates that need plaintext updates cannot run")),
    Rule("he-aggregator",
         lambda c: c.encryption.he and not _mean(c),
         lambda c: (f"--he cannot use the robust aggregator {c.algorithm.effective_aggregator()!r}: median, "
                    "trimmed mean, Krum and the like compare plaintext updates, and the server only holds "
                    "ciphertexts")),
    Rule("he-clip-update-norm",
         lambda c: c.encryption.he and _mean(c) and c.algorithm.clip_update_norm > 0,
         lambda c: ("--he cannot apply --clip-update-norm: the server only adds ciphertexts and never sees an "
                    "update or its norm. Bound updates on the clients with --dp local (each client clips its "
                    "update to --clip), or drop --clip-update-norm")),
    Rule("he-compression",
         lambda c: c.encryption.he and (c.communication.compression != "none" or c.communication.compress_broadcast),
         lambda c: ("--he cannot be combined with --compression or --compress-broadcast: ciphertexts are not "
                    "compressible that way (use --compression none)")),
    Rule("he-secagg",
         lambda c: c.encryption.he and c.privacy.secagg,
         lambda c: "--he and secure aggregation both hide updates from the server; choose one"),
    Rule("he-central-dp",
         lambda c: c.encryption.he and _central_dp(c),
         lambda c: (f"--he cannot be combined with --dp {c.privacy.dp}: central DP clips and noises plaintext "
                    "updates on the server, which only holds ciphertexts (use --dp local)")),
    Rule("he-resume-needs-keys",
         lambda c: c.encryption.he and c.run.resume and not c.encryption.he_keys,
         lambda c: ("resuming an HE run needs the keys it was encrypted under: create them with "
                    "`fedloom he-keys --out DIR` and pass --he-keys DIR (fresh keys cannot decrypt it)")),
    Rule("he-needs-federated-evaluation",
         lambda c: c.encryption.he and c.federation.fraction_evaluate <= 0,
         lambda c: ("--he needs federated evaluation (--fraction-evaluate > 0): the server never holds the "
                    "plaintext model, so it cannot evaluate centrally")),
    # asynchronous training (docs/async.md): refused where its accounting or protocol is not built
    Rule("async-privacy",
         lambda c: _async(c) and (c.privacy.dp != "none" or c.privacy.secagg or c.privacy.dp_sgd or c.encryption.he),
         lambda c: ("--mode async does not support --dp, --dp-sgd, --secagg or --he yet: their accounting and "
                    "protocols assume synchronous rounds (each buffer would have to be one DP release and one "
                    "SecAgg cohort); use --mode sync with them")),
    Rule("async-strategy",
         lambda c: _async(c) and (c.algorithm.strategy == "scaffold" or not _fedavg_family(c)),
         lambda c: (f"--mode async needs a FedAvg-family strategy without client control variates, got "
                    f"--strategy {c.algorithm.strategy} (fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad "
                    "and the robust aggregators work)")),
    Rule("async-sampling",
         lambda c: _async(c) and (c.algorithm.sampling or "uniform") != "uniform",
         lambda c: "--mode async dispatches to idle clients uniformly; --sampling must be uniform"),
    Rule("async-concurrency",
         lambda c: _async(c) and c.asynchrony.concurrency > c.federation.clients,
         lambda c: (f"--concurrency {c.asynchrony.concurrency} exceeds --clients {c.federation.clients}: a client "
                    "trains one task at a time")),
    Rule("async-contributions",
         lambda c: _async(c) and c.ledger.contributions,
         lambda c: "--contributions scores synchronous rounds; drop it with --mode async"),
    Rule("vectorized-needs-torch",
         lambda c: c.execution.backend == "vectorized" and _family(c) != "torch",
         lambda c: (f"--backend vectorized batches PyTorch models with torch.func; --model {c.training.model} is "
                    "not one: use --backend inline (or ray)")),
    Rule("xgboost-needs-tree-strategy",
         lambda c: _family(c) == "xgboost" and not _tree_strategy(c),
         lambda c: (f"--model xgboost trains trees, which --strategy {c.algorithm.strategy} cannot average: use "
                    "--strategy xgb-bagging, xgb-cyclic or xgb-histogram")),
    Rule("tree-strategy-needs-xgboost",
         lambda c: _tree_strategy(c) and _family(c) != "xgboost",
         lambda c: f"--strategy {c.algorithm.strategy} grows XGBoost trees: use --model xgboost"),
    Rule("trees-update-layers",
         lambda c: _family(c) == "xgboost" and bool(_tree_layers(c)),
         lambda c: (f"--model xgboost does not support {', '.join(_tree_layers(c))} yet: those layers work on "
                    "averaged float updates, and tree strategies exchange boosters and histograms (docs/tabular.md)")),
    Rule("dp-sgd-needs-torch",
         lambda c: c.privacy.dp_sgd and _family(c) == "sklearn",
         lambda c: ("--dp-sgd trains PyTorch models with per-example clipping (Opacus); scikit-learn estimators "
                    "cannot: use --dp local or --dp central")),
    # personalization (docs/personalization.md): the method runs inside the built-in TorchClient; heads stay home
    Rule("personalization-needs-torch",
         lambda c: _personal(c) != "none" and _family(c) != "torch",
         lambda c: (f"--personalization {_personal(c)} personalizes a PyTorch model inside the built-in TorchClient; "
                    f"--model {c.training.model} is not one: drop --personalization (or use a torch model)")),
    Rule("personalization-own-client",
         lambda c: _personal(c) != "none" and bool(c.training.client_fn),
         lambda c: (f"--personalization {_personal(c)} runs inside the built-in TorchClient, but --client-fn "
                    "gives your own client; personalize inside your client (fedloom.personalization.PersonalClient "
                    "is a TorchClient you can return), or drop --personalization")),
    Rule("personalization-needs-federated-evaluation",
         lambda c: _personal(c) != "none" and c.federation.fraction_evaluate <= 0,
         lambda c: (f"--personalization {_personal(c)} is judged by each client on its own held-out data, so it "
                    "needs federated evaluation: pass --fraction-evaluate 1.0 (or a fraction > 0)")),
    Rule("personal-head-central-eval",
         lambda c: _personal(c) in _HEAD_METHODS and c.federation.central_eval == "builtin",
         lambda c: (f"--personalization {_personal(c)}: the server holds the body only (heads never leave the "
                    "clients), so it cannot evaluate a whole model centrally; use --central-eval none (or auto)")),
    Rule("personal-head-scaffold",
         lambda c: _personal(c) in _HEAD_METHODS and _scaffold(c),
         lambda c: (f"--personalization {_personal(c)} federates the body only, but SCAFFOLD's client corrects "
                    "every parameter with control variates of the whole model; use --strategy fedavg or fedprox")),
    Rule("fedrep-dp-sgd",
         lambda c: _personal(c) == "fedrep" and c.privacy.dp_sgd,
         lambda c: ("--personalization fedrep trains the head and the body in separate phases, which DP-SGD (one "
                    "Opacus-wrapped pass over the whole model) does not cover; use fedper or ditto with --dp-sgd")),
    Rule("apfl-plain-sgd",
         lambda c: _personal(c) == "apfl" and (c.privacy.dp_sgd or getattr(_probe(c), "local_trainer", "epochs")
                                               not in ("epochs", "auto")),
         lambda c: ("--personalization apfl trains the global copy with plain SGD steps interleaved with the local "
                    "model's (Deng et al. 2020), so it cannot run another client half (FedProx's term, SCAFFOLD's "
                    "correction, DP-SGD); use --strategy fedavg (or a server optimizer, or qfedavg)")),
    Rule("personal-head-he",
         lambda c: _personal(c) in _HEAD_METHODS and c.encryption.he,
         lambda c: (f"--personalization {_personal(c)} with --he is not supported yet (untested); use --secagg to "
                    "hide the body updates, or ditto/finetune with --he")),
    Rule("qfedavg-aggregation",
         lambda c: c.algorithm.strategy == "qfedavg" and (c.privacy.secagg or _central_dp(c) or not _plain_mean(c)),
         lambda c: ("--strategy qfedavg combines every client's update with its own loss-dependent weight; it needs "
                    "individual, unclipped updates, so it runs without --secagg, central --dp, robust aggregators "
                    "and --clip-update-norm (use --dp local to protect updates)")),
    Rule("qfedavg-vectorized",
         lambda c: c.algorithm.strategy == "qfedavg" and c.execution.backend == "vectorized",
         lambda c: ("--strategy qfedavg needs each client's loss before training, which the vectorized backend does "
                    "not report; use --backend inline or ray")),
    Rule("contributions-need-individual-updates",
         lambda c: c.ledger.contributions and (c.privacy.secagg or c.encryption.he),
         lambda c: ("--contributions scores each client's update, but under "
                    f"{'--secagg' if c.privacy.secagg else '--he'} the server never sees one; drop one of them")),
]
"""Every cross-feature rule, in the order they are checked."""


def broken(cfg: RunConfig) -> list[Rule]:
    """The rules ``cfg`` breaks (empty when it is consistent)."""
    return [rule for rule in RULES if rule.violated(cfg)]


def check_rules(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` with the message of the first rule ``cfg`` breaks."""
    for rule in RULES:
        if rule.violated(cfg):
            raise ConfigError(rule.message(cfg))
