"""Strategy names, hyperparameters and aggregators from config and CLI: built, validated, run."""

from __future__ import annotations

import pytest

from fedloom import RunConfig, build_simulation, load_config
from fedloom.cli import main
from fedloom.errors import ConfigError
from fedloom.strategies import (
    STRATEGIES,
    Bulyan,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    FedYogi,
    Krum,
    NormBound,
    Scaffold,
    TrimmedMean,
)


def _build(**kw):  # noqa: ANN003, ANN202
    return build_simulation(RunConfig(dataset="iris", clients=3, rounds=1, progress=False, **kw))


def test_every_registered_name_builds() -> None:
    expected = {"fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "scaffold",
                "median", "trimmed_mean", "krum", "multikrum", "bulyan"}
    assert expected <= set(STRATEGIES)
    for name in expected:
        assert _build(strategy=name).strategy is not None


def test_hyperparameters_reach_the_strategy() -> None:
    s = _build(strategy="fedprox", proximal_mu=0.7).strategy
    assert isinstance(s, FedProx) and s.proximal_mu == 0.7
    s = _build(strategy="fedadam", server_lr=0.05, beta1=0.5, beta2=0.9, tau=0.01).strategy
    assert isinstance(s, FedAdam) and (s.server_lr, s.beta1, s.beta2, s.tau) == (0.05, 0.5, 0.9, 0.01)
    s = _build(strategy="fedyogi").strategy
    assert isinstance(s, FedYogi) and s.server_lr == 0.01  # 0 = the strategy's default
    assert _build(strategy="fedadagrad").strategy.server_lr == 0.1  # type: ignore[attr-defined]
    s = _build(strategy="fedavgm", server_momentum=0.5).strategy
    assert isinstance(s, FedAvgM) and (s.server_lr, s.server_momentum) == (1.0, 0.5)


def test_aggregator_composes_with_any_strategy() -> None:
    s = _build(strategy="fedadam", aggregator="trimmed_mean", trim_beta=0.25).strategy
    assert isinstance(s, FedAdam) and isinstance(s.aggregator, TrimmedMean) and s.aggregator.beta == 0.25
    s = _build(strategy="scaffold", aggregator="krum", byzantine_f=2, clip_update_norm=3.0).strategy
    assert isinstance(s, Scaffold) and isinstance(s.aggregator, NormBound)
    assert isinstance(s.aggregator.inner, Krum) and s.aggregator.inner.f == 2
    s = _build(strategy="bulyan").strategy  # alias: FedAvg + Bulyan
    assert type(s) is FedAvg and isinstance(s.aggregator, Bulyan)


@pytest.mark.parametrize(("strategy", "trainer"), [("scaffold", "ScaffoldTrainer"), ("fedprox", "ProximalTrainer"),
                                                   ("fedavg", "EpochTrainer"), ("fedadam", "EpochTrainer")])
def test_each_strategy_gets_its_client_half(strategy: str, trainer: str) -> None:
    """Clients of a configured run train with the strategy's declared local trainer."""
    sim = _build(strategy=strategy)
    assert type(sim.client_fn("0").trainer).__name__ == trainer


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"strategy": "fedsgd"}, "unknown strategy"),
        ({"aggregator": "mode"}, "unknown aggregator"),
        ({"strategy": "krum", "aggregator": "median"}, "conflicts"),
        ({"trim_beta": 0.5}, "trim_beta"),
        ({"byzantine_f": -1}, "byzantine_f"),
        ({"proximal_mu": -0.1}, "proximal_mu"),
        ({"server_momentum": 1.0}, "server_momentum"),
        ({"beta2": 1.5}, "beta2"),
        ({"tau": 0.0}, "tau"),
        ({"clip_update_norm": -1.0}, "clip_update_norm"),
        ({"attack": "sybil"}, "unknown attack"),
        ({"attack": "sign_flip"}, "attackers"),
        ({"attackers": 1.0, "attack": "gaussian"}, "attackers"),
        ({"stragglers": 1.5}, "stragglers"),
        ({"straggler_mode": "slow"}, "straggler_mode"),
    ],
)
def test_invalid_config_gives_a_clear_error(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def test_cli_reports_bad_strategy_values_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "--strategy", "fedadam", "--tau", "-1"])
    assert exc.value.code == 2
    assert "tau must be > 0" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_runs_a_strategy_with_a_robust_aggregator(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    pytest.importorskip("fedloom.runs", reason="fedloom run needs the run store (fedloom.runs)")
    main(["run", "--dataset", "iris", "--clients", "5", "--rounds", "2", "--strategy", "fedavgm",
          "--aggregator", "median", "--attack", "sign_flip", "--attackers", "0.2", "--stragglers", "0.3",
          "--no-progress", "--out", str(tmp_path / "run")])
    assert "final accuracy" in capsys.readouterr().out
