"""``fedloom audit privacy``: run an attack against a finished run and store the result in its directory.

Reads the run's ``config.toml`` (dataset, split, model, privacy settings), ``summary.json`` (the
noise multiplier actually used) and ``model.safetensors`` (the final global model), runs the
attack of :mod:`fedloom.audit`, and writes ``audit_<attack>.json`` and ``audit_<attack>.png``
beside them; the HTML report then shows them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fedloom.errors import ConfigError

__all__ = ["ATTACKS", "audit_run"]

ATTACKS = ("inversion", "membership", "canaries")


def _load(run_dir: Path) -> tuple[Any, Any, Any, dict[str, Any]]:
    from safetensors.numpy import load_file

    from fedloom.app.build import split_clients
    from fedloom.app.config import load_config
    from fedloom.data.datasets import load_dataset

    for name in ("config.toml", "model.safetensors"):
        if not (run_dir / name).exists():
            raise ConfigError(f"{run_dir} has no {name}: give the directory of a finished `fedloom run`")
    cfg = load_config(run_dir / "config.toml")
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    ds = load_dataset(cfg.data.dataset, test_fraction=cfg.data.test_fraction, seed=cfg.run.seed,
                      target_column=cfg.data.target_column, group_column=cfg.data.group_column or None)
    if ds.task != "classification":
        raise ConfigError("the privacy attacks need a classification task (cross-entropy); this run is regression")
    splits = split_clients(cfg, ds)
    saved = load_file(str(run_dir / "model.safetensors"))
    return cfg, ds, (splits, saved), summary


def _model_fn(cfg: Any, ds: Any) -> Any:
    from fedloom.models import build_model

    return lambda: build_model(cfg.training.model, num_features=ds.num_features, num_outputs=ds.num_outputs,
                               image_shape=ds.image_shape, hidden=cfg.training.hidden)


def _noise(cfg: Any, summary: dict[str, Any]) -> float:
    used = summary.get("privacy", {}).get("noise_multiplier")
    return float(used) if used else float(cfg.privacy.noise_multiplier or 1.0)


def audit_run(run_dir: str | Path, attack: str, *, examples: int = 6, method: str = "auto", iterations: int = 200,
              shadows: int = 0, canaries: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Run ``attack`` against the run in ``run_dir``; write ``audit_<attack>.json``/``.png``; return the numbers."""
    from fedloom.audit import report
    from fedloom.audit.suite import as_json, inversion_suite, membership_suite, predictor, train_model
    from fedloom.core.parameters import Parameters
    from fedloom.torch.params import load_parameters

    if attack not in ATTACKS:
        raise ConfigError(f"unknown attack {attack!r}; choose one of: {', '.join(ATTACKS)}")
    run_dir = Path(run_dir)
    cfg, ds, (splits, saved), summary = _load(run_dir)
    model_fn = _model_fn(cfg, ds)
    names = list(model_fn().state_dict())
    missing = [n for n in names if n not in saved]
    if missing:
        raise ConfigError(f"model.safetensors lacks {missing}: it was not written by this run's model")
    params = Parameters({n: saved[n] for n in names})
    clip = float(cfg.privacy.clip or 1.0)
    out: dict[str, Any] = {"attack": attack, "run": str(run_dir)}
    if attack == "inversion":
        members = np.concatenate([s.train for s in splits])
        take = members[:examples]
        targets = [(ds.x_train[i], int(ds.y_train[i])) for i in take]
        others = [(ds.x_train[i], int(ds.y_train[i])) for i in members[examples:]]
        chosen = method if method != "auto" else ("closed_form" if cfg.training.model in ("linear", "logistic", "mlp")
                                                  else "ig")
        result = inversion_suite(model_fn, params, targets, others, method=chosen, lr=cfg.training.lr,
                                 noise_multiplier=_noise(cfg, summary), clip=clip,
                                 topk_fraction=cfg.communication.topk_fraction, iterations=iterations,
                                 image_shape=ds.image_shape, seed=seed, cohort=min(10, max(2, cfg.federation.clients)))
        out.update(as_json(result), method=chosen)
        titles = {p: (f"PSNR {m['psnr']:.1f}" if "psnr" in m else f"MSE {m['mse']:.2f}")
                  for p, m in result.metrics.items()}
        report.plot_reconstructions(result.originals, result.reconstructions, run_dir / "audit_inversion.png",
                                    ds.image_shape, titles)
    elif attack == "membership":
        model = model_fn()
        load_parameters(model, params)
        members = np.concatenate([s.train for s in splits])
        shadow_epochs = max(1, cfg.federation.rounds * cfg.training.local_epochs)

        def shadow(x: np.ndarray, y: np.ndarray, s: int) -> Any:
            return predictor(train_model(model_fn, x, y, epochs=shadow_epochs, lr=cfg.training.lr,
                                         batch_size=cfg.training.batch_size, seed=s))

        curves = membership_suite(predictor(model), (ds.x_train[members], ds.y_train[members]),
                                  (ds.x_test, ds.y_test), shadow_train=shadow, shadows=shadows, seed=seed)
        out["curves"] = as_json(curves)
        report.plot_roc(curves, run_dir / "audit_membership.png")
    else:
        from fedloom.audit.canaries import audit_central_dp

        if cfg.privacy.dp != "central":
            raise ConfigError(f"the canary audit checks central DP; this run has dp = {cfg.privacy.dp!r} "
                              "(run with --dp central)")
        audit = audit_central_dp(noise_multiplier=_noise(cfg, summary), rounds=cfg.federation.rounds,
                                 canaries=canaries, other_clients=cfg.federation.clients,
                                 fraction=cfg.federation.fraction, clip=clip, delta=cfg.privacy.delta,
                                 accountant=cfg.privacy.accountant, seed=seed)
        out.update(audit.as_dict())
        report.plot_epsilons([audit.epsilon_accounted], {"one-run audit (central DP)": [audit.epsilon_lower]},
                             run_dir / "audit_canaries.png")
    (run_dir / f"audit_{attack}.json").write_text(json.dumps(out, indent=2, default=float))
    _refresh_report(run_dir)
    return out


def _refresh_report(run_dir: Path) -> None:
    """Rewrite report.html so it shows the audit (when the run wrote a summary)."""
    from fedloom.runs.plots import write_html_report

    if not (run_dir / "summary.json").exists():
        return
    summary = json.loads((run_dir / "summary.json").read_text())
    plots = sorted(p for p in run_dir.glob("*.png") if not p.name.startswith("audit_"))
    write_html_report(summary, plots, run_dir)
