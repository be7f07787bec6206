"""Personalization in configured runs: heads never leave the clients (also under SecAgg+ and local DP),
per-client results add up to the federated ones, personal state is checkpointed, rules and flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedloom import ConfigError, RunConfig, run_simulation
from fedloom.app.rules import RULES, broken
from fedloom.core.pool import payload_nbytes
from fedloom.engine import load_checkpoint

BASE: dict[str, Any] = dict(dataset="iris", clients=4, rounds=2, progress=False, fraction_evaluate=1.0, seed=3,
                            hidden=8)
HEAD = {"2.weight", "2.bias"}


class Spy:
    """Records what the server receives from each client (before aggregation) and each round's record."""

    def __init__(self) -> None:
        self.received: list[tuple[set[str], int]] = []
        self.records: list[Any] = []

    def on_fit_results(self, rnd: int, previous: Any, results: Any, failures: Any) -> None:
        self.received += [(set(res.parameters), payload_nbytes(res)) for _, res in results]

    def on_round_end(self, record: Any, state: Any) -> None:
        self.records.append(record)


@pytest.mark.parametrize("extra", [
    {"personalization": "fedper"},
    {"personalization": "fedrep"},
    {"personalization": "fedper", "secagg": True},
    {"personalization": "fedrep", "dp": "local", "noise_multiplier": 0.1, "clip": 5.0},
])
def test_heads_never_leave_the_clients(tmp_path: Path, extra: dict[str, Any]) -> None:
    spy = Spy()
    ckpt = tmp_path / "ckpt.safetensors"
    result = run_simulation(RunConfig(**BASE, **extra), observers=[spy], checkpoint_path=ckpt)
    assert set(result.state.parameters) == {"0.weight", "0.bias"}  # the server's state: the body only
    assert spy.received and all(names == {"0.weight", "0.bias"} for names, _ in spy.received)
    body_bytes = result.state.parameters.nbytes
    if not extra.get("secagg"):  # SecAgg+ sends masked ring elements of the body (plus its protocol's keys)
        assert all(n <= body_bytes + 64 for _, n in spy.received)
    state, _ = load_checkpoint(ckpt)
    assert not HEAD & set(state.parameters) and not any(HEAD & set(b) for b in state.buffers.values())
    assert spy.records[-1].metrics["fed_personal_accuracy"] == spy.records[-1].metrics["fed_accuracy"]


@pytest.mark.parametrize("method", ["finetune", "ditto", "fedper", "apfl"])
def test_per_client_results_weighted_by_examples_are_the_federated_metric(method: str) -> None:
    spy = Spy()
    run_simulation(RunConfig(**BASE, personalization=method), observers=[spy])
    for record in spy.records:
        rows = record.clients
        assert len(rows) == BASE["clients"] == record.metrics["fed_clients"]
        n = np.array([r["num_examples"] for r in rows.values()])
        for key in ("loss", "accuracy", "personal_loss", "personal_accuracy"):
            values = np.array([r[key] for r in rows.values()])
            assert float((n * values).sum() / n.sum()) == pytest.approx(record.metrics[f"fed_{key}"], rel=1e-12)


def test_without_personalization_each_client_reports_the_global_model() -> None:
    spy = Spy()
    run_simulation(RunConfig(**BASE), observers=[spy])
    rows = spy.records[-1].clients
    assert set(rows) == {"0", "1", "2", "3"} and all("personal_accuracy" not in r for r in rows.values())
    n = np.array([r["num_examples"] for r in rows.values()])
    acc = np.array([r["accuracy"] for r in rows.values()])
    assert float((n * acc).sum() / n.sum()) == pytest.approx(spy.records[-1].metrics["fed_accuracy"])


@pytest.mark.parametrize("method", ["ditto", "fedrep"])
def test_personal_state_is_checkpointed_and_a_resumed_run_continues_it(tmp_path: Path, method: str) -> None:
    cfg = dict(BASE, personalization=method, rounds=3)
    straight = Spy()
    full = run_simulation(RunConfig(**cfg), observers=[straight])
    ckpt = tmp_path / "c.safetensors"
    run_simulation(RunConfig(**{**cfg, "rounds": 2}), checkpoint_path=ckpt)
    resumed_spy = Spy()
    resumed = run_simulation(RunConfig(**cfg), checkpoint_path=ckpt, resume=True, observers=[resumed_spy])
    assert all(np.array_equal(full.parameters[k], resumed.parameters[k]) for k in full.parameters)
    assert resumed_spy.records[-1].clients == straight.records[-1].clients  # the personal models came back too


def test_qfedavg_runs_and_reports_the_clients_losses() -> None:
    spy = Spy()
    run_simulation(RunConfig(**BASE, strategy="qfedavg", q=1.0), observers=[spy])
    assert spy.records[-1].metrics["train_initial_loss"] > 0 and spy.records[-1].metrics["fit_failures"] == 0


def test_every_personalization_rule_fires_with_its_message() -> None:
    cases = {
        "personalization-own-client": RunConfig(personalization="ditto", fraction_evaluate=1.0,
                                                client_fn="my_client:make"),
        "personalization-needs-federated-evaluation": RunConfig(personalization="finetune"),
        "personal-head-central-eval": RunConfig(personalization="fedper", fraction_evaluate=1.0,
                                                central_eval="builtin"),
        "personal-head-scaffold": RunConfig(personalization="fedrep", fraction_evaluate=1.0, strategy="scaffold"),
        "fedrep-dp-sgd": RunConfig(personalization="fedrep", fraction_evaluate=1.0, dp_sgd=True,
                                   noise_multiplier=1.0),
        "apfl-plain-sgd": RunConfig(personalization="apfl", fraction_evaluate=1.0, strategy="fedprox"),
        "personal-head-he": RunConfig(personalization="fedper", fraction_evaluate=1.0, he=True),
        "qfedavg-aggregation": RunConfig(strategy="qfedavg", secagg=True),
        "qfedavg-vectorized": RunConfig(strategy="qfedavg", backend="vectorized"),
    }
    for name, cfg in cases.items():
        assert name in [r.name for r in broken(cfg)], name
        rule = next(r for r in RULES if r.name == name)
        if [r.name for r in broken(cfg)][0] == name:
            with pytest.raises(ConfigError) as info:
                cfg.validate()
            assert str(info.value) == rule.message(cfg)
    for fine in (RunConfig(personalization="fedper", fraction_evaluate=1.0, secagg=True, clients=4),
                 RunConfig(personalization="ditto", fraction_evaluate=1.0, dp="central", noise_multiplier=1.0),
                 RunConfig(strategy="qfedavg", dp="local", noise_multiplier=1.0)):
        fine.validate()


def test_flags_and_toml_keys(tmp_path: Path) -> None:
    from fedloom.app.config import load_config
    from fedloom.cli import cli

    path = tmp_path / "c.toml"
    path.write_text('[personal]\npersonalization = "fedrep"\npersonal_layers = "2"\nhead_epochs = 3\n'
                    'fraction_evaluate = 1.0\n[algorithm]\nstrategy = "qfedavg"\nq = 2.0\n')
    cfg = load_config(path)
    assert (cfg.personal.personalization, cfg.personal.layer_prefixes, cfg.personal.head_epochs, cfg.algorithm.q) == (
        "fedrep", ("2",), 3, 2.0)
    ctx = cli.commands["run"].make_context("run", ["--personalization", "ditto", "--ditto-lambda", "0.5",
                                                   "--finetune-steps", "3", "--personal-layers", "2",
                                                   "--strategy", "qfedavg", "--q", "1.5"])
    p = ctx.params
    assert (p["personalization"], p["ditto_lambda"], p["finetune_steps"], p["personal_layers"], p["q"]) == (
        "ditto", 0.5, 3, "2", 1.5)
    with pytest.raises(ConfigError, match="unknown personalization 'pfedme'"):
        RunConfig(personalization="pfedme").validate()
