"""Tabular models (issue 13): federated vs centralized vs each site alone, 3 seeds.

    python -m benchmarks.tabular          # a few minutes on 2 cores

Models: scikit-learn logistic regression (FedAvg, 3 rounds), XGBoost tree bagging (5 rounds, 2 trees
per client a round) and histogram XGBoost (5 trees). Data:

* ``breast_cancer``, 10 IID clients;
* ``sites.csv``: breast_cancer written as a CSV with a ``site`` column, three sites cut at the
  tertiles of *mean radius* (a partition by a feature, standing in for hospitals whose patients
  differ: the sites' label mixes differ too). One client per site (``--group-column site``).

Every number is measured on the server's held-out split (20%, the same rows for all three settings):
*federated* is ``fedloom``'s run; *centralized* trains the same model on the union of the clients'
rows (LogisticRegression to convergence; ``xgboost.train`` with the same hyperparameters, 20 rounds);
*site alone* trains it on one client's rows, averaged over the sites. Results go to
``benchmarks/tabular/results.json`` and ``RESULTS.md``.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
SEEDS = (0, 1, 2)
MODELS = {
    "sklearn logistic": {"model": "sklearn:logistic", "strategy": "fedavg", "rounds": 3},
    "xgb-bagging": {"model": "xgboost", "strategy": "xgb-bagging", "rounds": 5, "xgb_local_rounds": 2,
                    "xgb_max_depth": 3},
    "xgb-histogram": {"model": "xgboost", "strategy": "xgb-histogram", "rounds": 1 + 5 * 3, "xgb_max_depth": 3},
}


def write_sites_csv(path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    radius = bunch.data[:, 0]
    site = np.digitize(radius, np.quantile(radius, [1 / 3, 2 / 3]))
    names = [n.replace(" ", "_") for n in bunch.feature_names]
    rows = [",".join([*names, "site", "target"])]
    for x, s, y in zip(bunch.data, site, bunch.target, strict=True):
        rows.append(",".join([*(f"{v:.6g}" for v in x), f"site{s}", str(int(y))]))
    path.write_text("\n".join(rows) + "\n")


def scores(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    out = {"accuracy": float(np.mean((proba > 0.5) == y))}
    out["auc"] = float(roc_auc_score(y, proba)) if len(np.unique(y)) == 2 else float("nan")
    return out


def centralized(kind: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int
                ) -> dict[str, float]:
    if len(np.unique(y)) < 2:  # a site with one class predicts it
        return scores(np.full(len(y_test), float(y[0])), y_test)
    if kind == "sklearn logistic":
        from sklearn.linear_model import LogisticRegression

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LogisticRegression(max_iter=1000, random_state=seed).fit(x, y)
        return scores(model.predict_proba(x_test)[:, 1], y_test)
    import xgboost as xgb

    params = {"objective": "binary:logistic", "tree_method": "hist", "eta": 0.3, "max_depth": 3, "base_score": 0.5,
              "nthread": 1, "seed": seed}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=20)
    return scores(booster.predict(xgb.DMatrix(x_test)), y_test)


def one(dataset: str, kind: str, seed: int, extra: dict[str, Any]) -> dict[str, Any]:
    from fedloom.app.build import build_simulation, run_simulation
    from fedloom.app.config import RunConfig

    cfg = RunConfig(dataset=dataset, seed=seed, progress=False, fraction_evaluate=0.0, client_test_fraction=0.0,
                    **extra, **MODELS[kind])
    sim = build_simulation(cfg)
    ds = sim.dataset
    fed = run_simulation(cfg).final
    x, y = ds.x_train.astype(np.float64), ds.y_train
    xt, yt = ds.x_test.astype(np.float64), ds.y_test
    central = centralized(kind, x, y, xt, yt, seed)
    alone = [centralized(kind, x[s.train], y[s.train], xt, yt, seed) for s in sim.splits]
    return {"dataset": Path(dataset).stem, "model": kind, "seed": seed, "clients": len(sim.splits),
            "federated": {"accuracy": fed["accuracy"], "auc": fed["auc"]}, "centralized": central,
            "site_alone": {k: float(np.mean([a[k] for a in alone])) for k in ("accuracy", "auc")},
            "site_alone_worst": {k: float(np.min([a[k] for a in alone])) for k in ("accuracy", "auc")}}


def table(rows: list[dict]) -> str:
    lines = ["| data | model | federated acc | federated AUC | centralized acc | centralized AUC | site alone acc "
             "(mean / worst) | site alone AUC (mean / worst) |", "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)

    def ms(rs: list[dict], where: str, key: str) -> str:
        v = np.array([r[where][key] for r in rs])
        return f"{v.mean():.3f} ± {v.std():.3f}"

    for (data, model), rs in groups.items():
        lines.append(f"| {data} ({rs[0]['clients']} clients) | {model} | {ms(rs, 'federated', 'accuracy')} | "
                     f"{ms(rs, 'federated', 'auc')} | {ms(rs, 'centralized', 'accuracy')} | "
                     f"{ms(rs, 'centralized', 'auc')} | {ms(rs, 'site_alone', 'accuracy')} / "
                     f"{np.mean([r['site_alone_worst']['accuracy'] for r in rs]):.3f} | "
                     f"{ms(rs, 'site_alone', 'auc')} / {np.mean([r['site_alone_worst']['auc'] for r in rs]):.3f} |")
    return "\n".join(lines)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sites = Path(tmp) / "sites.csv"
        write_sites_csv(sites)
        data = {"breast_cancer": {"clients": 10, "partition": "iid"},
                str(sites): {"group_column": "site", "partition": "column", "clients": 3}}
        for dataset, extra in data.items():
            for kind in MODELS:
                for seed in SEEDS:
                    row = one(dataset, kind, seed, extra)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    (HERE / "results.json").write_text(json.dumps(rows, indent=1))
    (HERE / "table.md").write_text(table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
