"""CKKS aggregation: equals the plaintext aggregate, the server holds no secret key, clear errors."""

from __future__ import annotations

import stat
import sys

import numpy as np
import pytest

pytest.importorskip("tenseal")

from click.testing import CliRunner  # noqa: E402

from fedloom import Client, FitRes, Parameters, RunConfig, run_simulation  # noqa: E402
from fedloom.cli import cli  # noqa: E402
from fedloom.core.strategy import Failure  # noqa: E402
from fedloom.errors import ConfigError, ValidationError  # noqa: E402
from fedloom.privacy.he import (  # noqa: E402
    HE_EXTRA,
    HEClient,
    HEFedAvg,
    encrypt_vector,
    key_id,
    load_context,
    make_context,
    public_bytes,
    read_keys,
    require_tenseal,
    write_keys,
)
from fedloom.simulation import build_simulation  # noqa: E402


@pytest.fixture(scope="module")
def contexts():
    secret = make_context(poly_degree=8192, scale_bits=40)
    return secret, load_context(public_bytes(secret))


class Fixed(Client):
    """An inner client whose training result is fixed."""

    def __init__(self, params: Parameters, n: int) -> None:
        self.params, self.n = params, n

    def get_parameters(self, config):
        return Parameters({k: np.zeros_like(v) for k, v in self.params.items()})

    def fit(self, parameters, config):
        return FitRes(self.params, self.n, {"train_loss": 1.0})

    def evaluate(self, parameters, config):
        raise NotImplementedError


def test_he_aggregate_equals_plaintext_aggregate(contexts):
    secret, public = contexts
    rng = np.random.default_rng(0)
    shapes = {"w": (50, 101), "b": (101,)}  # 5151 values: two ciphertexts of 4096 slots
    models = [Parameters({k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}) for _ in range(3)]
    counts = [10, 25, 65]
    strategy = HEFedAvg(context=public)
    state = strategy.initialize(models[0])
    results = [(str(i), HEClient(Fixed(m, n), context=secret).fit(models[0], {})) for i, (m, n) in
               enumerate(zip(models, counts, strict=True))]
    assert all(res.parameters.names == [] for _, res in results)  # nothing in plaintext
    metrics = strategy.aggregate_fit(state, 1, results, [])
    assert metrics["fit_clients"] == 3
    assert state.parameters.names == []  # the server never has the model

    payload = strategy.configure_fit(state, 2, ["0"])[0][1].parameters
    decrypted = HEClient(Fixed(models[0], 1), context=secret).open(payload).flatten()
    plain = sum(n * m.flatten() for m, n in zip(models, counts, strict=True)) / sum(counts)
    assert np.linalg.norm(decrypted - plain) / np.linalg.norm(plain) < 1e-4
    assert np.abs(decrypted - plain).max() < 1e-5


def test_each_side_refuses_the_other_sides_context(contexts):
    """HEFedAvg refuses a secret context, HEClient a public one. That a deployed server runs without the
    secret key on its machine is shown end to end in tests/adversarial/test_adv_he_server_keys.py."""
    secret, public = contexts
    assert secret.is_private() and not public.is_private()
    with pytest.raises(ConfigError, match="only the public context"):
        HEFedAvg(context=secret)
    with pytest.raises(ValueError, match="doesn't hold a Secret key"):
        public.secret_key()
    with pytest.raises(ConfigError, match="secret context"):
        HEClient(Fixed(Parameters(), 1), context=public)


def test_server_side_build_reads_only_the_public_file(tmp_path):
    write_keys(tmp_path / "keys", poly_degree=4096, scale_bits=30)
    (tmp_path / "keys" / "secret.tenseal").unlink()
    cfg = RunConfig(dataset="iris", clients=3, he=True, he_poly_degree=4096, he_scale=30,
                    he_keys=str(tmp_path / "keys"), fraction_evaluate=1.0)
    sim = build_simulation(cfg, side="server")
    assert isinstance(sim.strategy, HEFedAvg) and not sim.strategy.context.is_private()
    with pytest.raises(RuntimeError, match="has no clients"):
        sim.client_fn("0")
    with pytest.raises(ConfigError, match="secret.tenseal does not exist"):
        build_simulation(cfg, side="client")


def test_malformed_ciphertext_drops_that_client(contexts):
    secret, public = contexts
    params = Parameters({"w": np.ones(10, np.float32)})
    strategy = HEFedAvg(context=public)
    state = strategy.initialize(params)
    good = HEClient(Fixed(params, 2), context=secret).fit(params, {})
    bad = FitRes(Parameters(), 100, extras={HE_EXTRA: Parameters({"he.00000": np.arange(50, dtype=np.uint8)})})
    short = FitRes(Parameters(), 100, extras={HE_EXTRA: encrypt_vector(secret, np.ones(9))})
    metrics = strategy.aggregate_fit(state, 1, [("0", good), ("1", bad), ("2", short)], [Failure("3", "timeout")])
    assert (metrics["fit_clients"], metrics["fit_failures"]) == (1, 3)
    payload = strategy.configure_fit(state, 2, ["0"])[0][1].parameters
    np.testing.assert_allclose(HEClient(Fixed(params, 1), context=secret).open(payload)["w"], 1.0, atol=1e-6)


@pytest.mark.slow
def test_he_run_matches_plaintext_fedavg_evaluated_federatedly():
    cfg = RunConfig(dataset="iris", model="logistic", clients=3, rounds=3, fraction_evaluate=1.0, progress=False)
    plain = run_simulation(cfg).final
    he = run_simulation(cfg.replace(he=True)).final
    assert "accuracy" not in he  # no central evaluation: the server cannot see the model
    assert he["fed_accuracy"] == pytest.approx(plain["fed_accuracy"], abs=0.02)
    assert he["fed_loss"] == pytest.approx(plain["fed_loss"], rel=1e-3)
    assert he["bytes_up"] > 10 * plain["bytes_up"]  # ciphertexts: 32 bytes per slot, chunks of 4096


def test_invalid_he_combinations_raise_clear_errors():
    base = RunConfig(dataset="iris", clients=3, he=True, fraction_evaluate=1.0)
    base.validate()
    for changes, message in [
        ({"compression": "q8"}, "cannot be combined with --compression"),
        ({"compress_broadcast": True}, "cannot be combined with --compression"),
        ({"fraction_evaluate": 0.0}, "cannot evaluate centrally"),
        ({"he_poly_degree": 1000}, "he_poly_degree must be one of"),
        ({"he_scale": 55}, "must be 20..50 bits"),
    ]:
        with pytest.raises(ConfigError, match=message):
            base.replace(**changes).validate()
    robust = base.replace()
    robust.aggregator = "median"  # the field the strategy library adds
    with pytest.raises(ConfigError, match="robust aggregator 'median'"):
        robust.validate()
    with pytest.raises(ConfigError, match="cannot use aggregator"):
        HEFedAvg(context=load_context(public_bytes(make_context(poly_degree=4096, scale_bits=30))),
                 aggregator=lambda u, w: u[0])


def test_missing_tenseal_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tenseal", None)
    with pytest.raises(ConfigError, match=r"pip install 'fedloom\[he\]'"):
        require_tenseal()
    with pytest.raises(ConfigError, match="TenSEAL"):
        RunConfig(dataset="iris", he=True, fraction_evaluate=1.0).validate()


def test_he_keys_command_writes_secret_and_public_contexts(tmp_path):
    out = tmp_path / "keys"
    result = CliRunner().invoke(cli, ["he-keys", "--out", str(out), "--poly-degree", "4096", "--scale", "30"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((out / "secret.tenseal").stat().st_mode) == 0o600
    secret, public = read_keys(out)
    assert secret.is_private() and not public.is_private()
    assert not secret.has_galois_keys() and not public.has_galois_keys()
    # A ciphertext from the client copy is readable with the server copy (same keys).
    payload = encrypt_vector(secret, np.arange(3.0))
    opened = HEClient(Fixed(Parameters({"x": np.zeros(3)}), 1), context=secret).open(
        Parameters({"he.weight": np.array([2.0]), **payload}))
    np.testing.assert_allclose(opened["x"], [0.0, 0.5, 1.0], atol=1e-5)
    cfg = RunConfig(dataset="iris", clients=3, he=True, he_keys=str(out), fraction_evaluate=1.0)
    assert not build_simulation(cfg).strategy.context.is_private()


def test_aggregate_under_other_keys_is_refused_not_decrypted_to_garbage(contexts):
    secret, public = contexts
    other = make_context(poly_degree=8192, scale_bits=40)
    params = Parameters({"w": np.ones(4, np.float32)})
    strategy = HEFedAvg(context=public)
    state = strategy.initialize(params)
    strategy.aggregate_fit(state, 1, [("0", HEClient(Fixed(params, 1), context=secret).fit(params, {}))], [])
    _, ins = strategy.configure_fit(state, 2, ["0"])[0]
    assert ins.config["he_key_id"] == key_id(secret) == key_id(public)
    with pytest.raises(ValidationError, match="encrypted under other keys"):
        HEClient(Fixed(params, 1), context=other).fit(ins.parameters, ins.config)
    with pytest.raises(ConfigError, match="resuming an HE run needs the keys"):
        RunConfig(dataset="iris", he=True, fraction_evaluate=1.0, resume=True).validate()


@pytest.mark.slow
def test_he_run_resumes_from_checkpoint_with_its_keys(tmp_path):
    write_keys(tmp_path / "keys", poly_degree=4096, scale_bits=30)
    cfg = RunConfig(dataset="iris", model="logistic", clients=3, rounds=2, he=True, he_keys=str(tmp_path / "keys"),
                    fraction_evaluate=1.0, progress=False)
    run_simulation(cfg, checkpoint_path=tmp_path / "ck")
    resumed = run_simulation(cfg.replace(rounds=4), checkpoint_path=tmp_path / "ck", resume=True)
    straight = run_simulation(cfg.replace(rounds=4))
    assert [h.round for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.final["fed_loss"] == pytest.approx(straight.final["fed_loss"], rel=1e-5)
