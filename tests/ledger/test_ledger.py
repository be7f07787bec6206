"""The round ledger of a simulated run: it verifies, and any change to it or to the model fails at the
right entry; Merkle proofs; `fedloom audit verify/prove`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fedloom.app.config import RunConfig
from fedloom.cli import cli
from fedloom.core import Parameters
from fedloom.ledger.chain import LEDGER_FILE, LedgerError, read_entries, verify_ledger
from fedloom.ledger.keys import write_key_pair
from fedloom.ledger.merkle import inclusion_proof, merkle_root, verify_inclusion
from fedloom.runs.runner import execute_run

ROUNDS = 3


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ledger") / "run"
    execute_run(RunConfig(dataset="iris", model="linear", clients=4, rounds=ROUNDS, progress=False, out=str(out)))
    return out


@pytest.fixture
def run(honest_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(honest_run, copy)
    return copy


def _entry_of(i: int, data: bytes) -> int:
    return data[:i].count(b"\n")


def test_an_honest_simulated_run_verifies(run: Path):
    report = verify_ledger(run)
    assert report.entries == ROUNDS and report.rounds == [1, 2, 3]
    entries = read_entries(run / LEDGER_FILE)
    assert entries[0]["clients"] == ["0", "1", "2", "3"] and entries[0]["tree_size"] == 4
    assert all(e["model_before"] == p["model_after"] for p, e in zip(entries, entries[1:], strict=False))
    result = CliRunner().invoke(cli, ["audit", "verify", str(run)])
    assert result.exit_code == 0 and "OK: 3 entries" in result.output


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_flipping_any_byte_of_any_entry_fails_at_that_entry(run: Path, offset: int):
    """Every byte of the ledger, a third of them per case (the three cases cover all)."""
    path = run / LEDGER_FILE
    data = path.read_bytes()
    for i in range(offset, len(data), 3):
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(LedgerError) as err:
            verify_ledger(run)
        assert err.value.index == _entry_of(i, data), (i, chr(data[i]), str(err.value))
    path.write_bytes(data)
    verify_ledger(run)


@pytest.mark.parametrize("k", range(ROUNDS))
def test_deleting_an_entry_fails_at_its_place(run: Path, k: int):
    path = run / LEDGER_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:k] + lines[k + 1:]))
    with pytest.raises(LedgerError) as err:
        verify_ledger(run)
    assert err.value.index == min(k, ROUNDS - 2)  # deleting the last one: the model no longer matches the new last


def test_reordering_entries_fails_at_the_first_moved_one(run: Path):
    path = run / LEDGER_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2] + lines[1])
    with pytest.raises(LedgerError) as err:
        verify_ledger(run)
    assert err.value.index == 1


def test_replacing_the_final_model_fails_at_the_last_entry(run: Path):
    model = Parameters.from_bytes((run / "model.safetensors").read_bytes())
    changed = Parameters({k: v + np.float32(1e-3) if i == 0 else v for i, (k, v) in enumerate(model.items())})
    from safetensors.numpy import save_file

    save_file(dict(changed.items()), str(run / "model.safetensors"))
    with pytest.raises(LedgerError) as err:
        verify_ledger(run)
    assert err.value.index == ROUNDS - 1 and "final model" in str(err.value)
    result = CliRunner().invoke(cli, ["audit", "verify", str(run)])
    assert result.exit_code == 1 and "entry 2" in result.output


def test_a_ledger_re_signed_with_another_key_fails_against_the_distributed_public_key(run: Path, tmp_path: Path):
    """Whoever rewrites the ledger must re-sign it; the public key distributed with the CA exposes that."""
    from fedloom.ledger.chain import LedgerWriter

    original_pub = tmp_path / "distributed.pub"
    shutil.copy(run / "ledger.pub", original_pub)
    entries = read_entries(run / LEDGER_FILE)
    entries[1]["clients"] = ["0", "1", "2"]  # the rewrite: client 3 was never counted in round 2
    (run / LEDGER_FILE).unlink()
    writer = LedgerWriter(run / LEDGER_FILE, write_key_pair(run))  # an attacker's key replaces the run's
    for e in entries:
        writer.append({k: v for k, v in e.items() if k not in ("index", "prev", "key_id", "sig")})
    verify_ledger(run)  # consistent with the swapped ledger.pub in the run directory...
    with pytest.raises(LedgerError) as err:  # ...but not with the key distributed with the CA
        verify_ledger(run, public_key=original_pub)
    assert err.value.index == 0


def test_audit_prove_prints_a_proof_that_checks(run: Path):
    result = CliRunner().invoke(cli, ["audit", "prove", str(run), "--client", "2", "--round", "2"])
    assert result.exit_code == 0, result.output
    assert '"verified": true' in result.output and '"counted": true' in result.output
    missing = CliRunner().invoke(cli, ["audit", "prove", str(run), "--client", "9", "--round", "2"])
    assert missing.exit_code != 0 and "no update in round 2" in str(missing.exception)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 13])
def test_merkle_inclusion_proofs_verify_and_reject_other_leaves(n: int):
    leaves = [f"leaf-{i}".encode() for i in range(n)]
    root = merkle_root(leaves)
    for i in range(n):
        proof = inclusion_proof(leaves, i)
        assert verify_inclusion(leaves[i], i, n, proof, root)
        assert not verify_inclusion(b"other", i, n, proof, root)
        if n > 1:
            assert not verify_inclusion(leaves[i], (i + 1) % n, n, proof, root)
