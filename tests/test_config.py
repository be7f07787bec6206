import pytest

from fedloom.config import RunConfig, load_config
from fedloom.errors import ConfigError


def test_defaults_are_valid():
    cfg = load_config()
    assert (cfg.dataset, cfg.clients, cfg.partition, cfg.strategy) == ("digits", 10, "dirichlet", "fedavg")


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('dataset = "wine"\nrounds = 7\n[train]\nlr = 1\n')
    cfg = load_config(path, {"rounds": 3, "seed": None})
    assert cfg.dataset == "wine" and cfg.rounds == 3 and cfg.lr == 1.0 and isinstance(cfg.lr, float)


@pytest.mark.parametrize(("text", "message"), [
    ('datset = "digits"', r"unknown config key\(s\) \['datset'\]"),
    ("rounds = 'ten'", "rounds must be int"),
    ("weighted = 1", "weighted must be true or false"),
    ("rounds = [", "not valid TOML"),
])
def test_bad_toml(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/exp.toml")


@pytest.mark.parametrize(("override", "message"), [
    ({"clients": 0}, "clients must be >= 1"),
    ({"fraction": 0.0}, r"fraction must be in \(0, 1\]"),
    ({"fraction": 1.5}, r"fraction must be in \(0, 1\]"),
    ({"alpha": 0.0}, "alpha must be > 0"),
    ({"alpha": -1.0}, "alpha must be > 0"),
    ({"dataset": "cifar"}, "unknown dataset 'cifar'; choose one of"),
    ({"model": "resnet"}, "unknown model 'resnet'; choose one of"),
    ({"strategy": "fedmagic"}, "unknown strategy 'fedmagic'; choose one of"),
    ({"partition": "zipf"}, "unknown partition"),
    ({"rounds": 0}, "rounds must be >= 1"),
    ({"lr": 0.0}, "lr must be > 0"),
])
def test_invalid_values_have_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, override)


def test_replace_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown config key"):
        RunConfig().replace(epochs=3)
