"""The run configuration as feature-owned sections: TOML tables, flat keys, flags and rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomli_w

from fedloom import ConfigError, RunConfig, load_config, run_simulation
from fedloom.app.config import SECTIONS, config_fields, section_of
from fedloom.app.rules import RULES, broken
from fedloom.privacy.options import PrivacyOptions


def test_fields_live_in_the_section_of_their_feature() -> None:
    cfg = RunConfig(dataset="iris", dp="central", noise_multiplier=1.0, rounds=3, compression="q8")
    assert (cfg.data.dataset, cfg.privacy.dp, cfg.federation.rounds, cfg.communication.compression) == (
        "iris",
        "central",
        3,
        "q8",
    )
    assert cfg.dp == "central"  # flat access still reads the section
    assert section_of("he_keys") == "encryption" and section_of("server_lr") == "algorithm"
    assert len({f.name for f in config_fields()}) == len(config_fields())  # unique across sections


def test_sections_can_be_passed_whole_and_round_trip_through_toml(tmp_path: Path) -> None:
    cfg = RunConfig(privacy=PrivacyOptions(dp="local", noise_multiplier=0.5), clients=4, dataset="wine")
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(cfg.to_nested()))
    back = load_config(path)
    assert back == cfg and set(cfg.to_nested()) == set(SECTIONS)


def test_flat_and_readability_tables_still_load(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('dataset = "iris"\n[train]\nrounds = 4\nlr = 0.5\n[privacy]\nclip = 2.0\n')
    cfg = load_config(path, {"rounds": 6})
    assert (cfg.data.dataset, cfg.federation.rounds, cfg.training.lr, cfg.privacy.clip) == ("iris", 6, 0.5, 2.0)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[data]\ndatset = "iris"\n', r"unknown config key\(s\) \['datset'\]"),
        ("[data]\nrounds = 3\n[federation]\nrounds = 4\n", "rounds is set twice"),
        ('[federation]\nrounds = "3"\n', "rounds must be int"),
    ],
)
def test_bad_toml_is_a_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_every_rule_fires_at_validation_with_its_own_message() -> None:
    cases = {
        "secagg-compression": RunConfig(secagg=True, compression="q8"),
        "secagg-needs-mean": RunConfig(secagg=True, aggregator="median"),
        "he-central-dp": RunConfig(he=True, dp="central", noise_multiplier=1.0, fraction_evaluate=0.5),
        "server-opt-preset": RunConfig(strategy="fedadam", server_opt="adam"),
        "dp-needs-noise": RunConfig(dp="local"),
        "dp-sgd-scaffold": RunConfig(dp_sgd=True, strategy="scaffold"),
    }
    for name, cfg in cases.items():
        assert [r.name for r in broken(cfg)] == [name]
        rule = next(r for r in RULES if r.name == name)
        with pytest.raises(ConfigError) as info:
            cfg.validate()
        assert str(info.value) == rule.message(cfg)
    assert broken(RunConfig()) == []


def test_server_opt_composes_into_fedavg_like_the_named_preset() -> None:
    base = dict(dataset="iris", model="linear", clients=4, rounds=3, partition="iid", progress=False, seed=2)
    preset = run_simulation(RunConfig(**base, strategy="fedadam"))
    composed = run_simulation(RunConfig(**base, strategy="fedavg", server_opt="adam"))
    for k in preset.parameters:
        np.testing.assert_array_equal(preset.parameters[k], composed.parameters[k])
    with pytest.raises(ConfigError, match="unknown server optimizer 'lamb'; choose one of: sgd, momentum"):
        RunConfig(server_opt="lamb").validate()


# Every flag of `fedloom run` before the config was split into sections (issue 12): none may disappear.
FLAGS_BEFORE_SECTIONS = [
    "dataset",
    "target_column",
    "group_column",
    "test_fraction",
    "client_test_fraction",
    "partition",
    "alpha",
    "shards_per_client",
    "model",
    "hidden",
    "local_epochs",
    "batch_size",
    "lr",
    "optimizer",
    "momentum",
    "clients",
    "rounds",
    "fraction",
    "min_clients",
    "fraction_evaluate",
    "strategy",
    "weighted",
    "eval_every",
    "aggregator",
    "clip_update_norm",
    "trim_beta",
    "byzantine_f",
    "multikrum_m",
    "proximal_mu",
    "server_lr",
    "server_momentum",
    "beta1",
    "beta2",
    "tau",
    "attack",
    "attackers",
    "attack_scale",
    "stragglers",
    "straggler_mode",
    "backend",
    "seed",
    "out",
    "resume",
    "progress",
    "secagg",
    "secagg_neighbours",
    "secagg_threshold",
    "secagg_bits",
    "secagg_weight_cap",
    "dp",
    "noise_multiplier",
    "clip",
    "adaptive_quantile",
    "target_epsilon",
    "delta",
    "accountant",
    "dp_sgd",
    "dp_sgd_noise_multiplier",
    "dp_sgd_max_grad_norm",
    "compression",
    "topk_fraction",
    "error_feedback",
    "quant_block",
    "compress_broadcast",
    "he",
    "he_poly_degree",
    "he_scale",
    "he_keys",
    "ray_address",
    "ray_num_cpus",
    "ray_cpus_per_client",
    "ray_gpus_per_client",
]


def test_every_flag_from_before_the_sections_still_works() -> None:
    from click.testing import CliRunner

    from fedloom.cli import cli

    help_text = CliRunner().invoke(cli, ["run", "--help"]).output
    for name in FLAGS_BEFORE_SECTIONS:
        assert "--" + name.replace("_", "-") in help_text, name
        assert name in {f.name for f in config_fields()}
    # and a flag still sets its field, wherever the field lives now
    assert load_config(None, {"dp_sgd_max_grad_norm": 2.0, "ray_num_cpus": 3}).privacy.dp_sgd_max_grad_norm == 2.0
