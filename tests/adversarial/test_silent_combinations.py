"""Issue 10, finding 7: combinations that silently did something else than asked are refused at
config time, by a rule of the one table (fedloom.app.rules), with a message that says why and what to
use instead.

Before the fix each of these configurations was accepted: central DP dropped Krum (and
--clip-update-norm) without a word, SCAFFOLD under central DP kept its server control variate at
zero, SCAFFOLD under SecAgg+ failed every round, and HE dropped --clip-update-norm (refused, but with
a message about a "robust aggregator 'mean'").
"""

from __future__ import annotations

import pytest

from fedloom import ConfigError, RunConfig
from fedloom.app.rules import RULES, broken

DP = {"dp": "central", "noise_multiplier": 1.0}
HE = {"he": True, "fraction_evaluate": 0.5}

CASES = {
    "central-dp-aggregator": (RunConfig(**DP, aggregator="krum"), ["Krum", "--aggregator mean", "--dp local"]),
    "central-dp-clip-update-norm": (RunConfig(**DP, clip_update_norm=2.0), ["--clip"]),
    "central-dp-scaffold": (RunConfig(**DP, strategy="scaffold"), ["control variate", "--strategy fedavg"]),
    "secagg-scaffold": (RunConfig(secagg=True, strategy="scaffold"), ["delta c_i", "--strategy fedavg"]),
    "secagg-clip-update-norm": (RunConfig(secagg=True, clip_update_norm=2.0), ["--clip"]),
    "he-clip-update-norm": (RunConfig(**HE, clip_update_norm=2.0), ["--dp local"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_silently_wrong_combination_is_refused_with_its_rules_message(name: str) -> None:
    cfg, hints = CASES[name]
    assert [r.name for r in broken(cfg)] == [name]
    rule = next(r for r in RULES if r.name == name)
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert str(info.value) == rule.message(cfg)
    for hint in hints:  # why, and what to use instead
        assert hint in str(info.value), (hint, str(info.value))


def test_the_robust_alias_is_refused_like_the_aggregator_and_the_working_combinations_still_pass() -> None:
    assert [r.name for r in broken(RunConfig(**DP, strategy="krum"))] == ["central-dp-aggregator"]
    for ok in (RunConfig(**DP), RunConfig(**DP, strategy="fedavgm"), RunConfig(**DP, strategy="fedprox"),
               RunConfig(dp="local", noise_multiplier=1.0, aggregator="krum"), RunConfig(secagg=True),
               RunConfig(strategy="scaffold", aggregator="median"), RunConfig(**HE)):
        assert broken(ok) == [], ok
    # the HE rule about robust aggregators no longer fires for a mean with norm bounding (it had the wrong reason)
    assert [r.name for r in broken(RunConfig(**HE, aggregator="median"))] == ["he-aggregator"]
