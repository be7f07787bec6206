"""``fedloom audit privacy`` on a real run directory: files written, numbers sane, the report shows them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fedloom.cli import cli


@pytest.mark.slow
def test_audit_privacy_runs_every_attack_on_a_central_dp_run(tmp_path):
    run = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(cli, ["run", "--dataset", "digits", "--model", "linear", "--clients", "10", "--rounds", "2",
                              "--dp", "central", "--noise-multiplier", "1.0", "--clip", "1.0", "--no-progress",
                              "--out", str(run)])
    assert res.exit_code == 0, res.output
    for attack in ("inversion", "membership", "canaries"):
        res = runner.invoke(cli, ["audit", "privacy", "--attack", attack, str(run), "--examples", "2",
                                  "--canaries", "200"])
        assert res.exit_code == 0, res.output
        assert (run / f"audit_{attack}.png").stat().st_size > 1000
    inversion = json.loads((run / "audit_inversion.json").read_text())
    assert inversion["protections"]["none"]["psnr"] > 60  # the closed form on a linear model
    assert inversion["protections"]["secagg"]["psnr_any"] < 25
    canaries = json.loads((run / "audit_canaries.json").read_text())
    assert canaries["epsilon_lower"] < canaries["epsilon_accounted"]
    assert 0.0 <= json.loads((run / "audit_membership.json").read_text())["curves"]["loss threshold"]["auc"] <= 1.0
    report = (run / "report.html").read_text()
    assert "Privacy audit" in report and "audit_inversion.png" in report and "audit_canaries.png" in report


def test_audit_privacy_explains_a_directory_that_is_not_a_run(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["audit", "privacy", "--attack", "membership", str(tmp_path)])
    assert res.exit_code != 0 and "no config.toml" in str(res.exception) + res.output
