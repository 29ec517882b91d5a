import dataclasses
from pathlib import Path

import pytest

from instrec.config import Config, env_overrides, parse_assignments
from instrec.errors import ConfigError


def test_overrides_are_typed():
    config = Config().with_overrides({"index.backend": "flat", "descriptor.scales": "1,0.707", "descriptor.flip": "yes",
                                      "decision.threshold": "0.5", "runtime.batch_size": "8"})
    assert config.index.backend == "flat"
    assert config.descriptor.scales == (1.0, 0.707)
    assert config.descriptor.flip is True
    assert config.decision.threshold == 0.5
    assert config.runtime.batch_size == 8


@pytest.mark.parametrize("key,value,fragment", [
    ("index.backnd", "flat", "unknown setting"),
    ("nosuch.key", "1", "unknown setting"),
    ("index.backend", "annoy", "must be one of"),
    ("runtime.batch_size", "many", "expects int"),
    ("descriptor.flip", "maybe", "expects bool"),
    ("index", "flat", "is a section"),
    ("decision.competitor_weight", "1.5", "competitor_weight"),
    ("decision.competitors", "0", "competitors"),
    ("rerank.local_shortlist", "-1", "local_shortlist"),
    ("rerank.match_precision", "float8", "must be one of"),
])
def test_bad_settings_are_refused(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Config().with_overrides({key: value})


def test_environment_then_explicit_overrides():
    environ = {"INSTREC_HOME": "/tmp/x", "INSTREC_INDEX__BACKEND": "ivf", "OTHER": "1"}
    assert env_overrides(environ) == {"home": "/tmp/x", "index.backend": "ivf"}
    config = Config.load(overrides={"index.backend": "flat"}, environ=environ)
    assert config.home == Path("/tmp/x") and config.index.backend == "flat"
    assert Config.load(home="elsewhere", environ=environ).home == Path("elsewhere")


def test_optional_values_accept_none():
    assert Config().with_overrides({"decision.threshold": "none"}).decision.threshold is None


def test_assignments_need_equals():
    assert parse_assignments(["a.b=c=d"]) == {"a.b": "c=d"}
    with pytest.raises(ConfigError):
        parse_assignments(["index.backend"])


def _changed(value):
    """Another valid value of a setting of ``value``'s type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.5
    if isinstance(value, tuple):
        return value + (value[-1],)
    return None


@pytest.mark.parametrize("section", ["descriptor", "decision", "rerank"])
def test_every_setting_that_changes_scores_changes_the_scoring_key(section):
    """Calibrations are stored per key: one made under other scoring must not be reused."""
    base = Config()
    settings = dataclasses.asdict(getattr(base, section))
    checked = 0
    for name, value in settings.items():
        if name in ("top_k", "threshold", "target_far", "auto_calibrate"):  # what is shown, where the line is drawn
            new = {"target_far": 0.5, "auto_calibrate": False}.get(name, 3)
            changed = dataclasses.replace(base, **{section: dataclasses.replace(getattr(base, section), **{name: new})})
            assert changed.scoring_key() == base.scoring_key(), name
            continue
        new = _changed(value)
        if new is None:  # strings and literals: a value of its own below
            new = {"backbone": "efficientnet_lite1", "weights": "w.pt", "whitening": "w.npz", "aggregation": "prototype",
                   "vocabulary": "v.npz", "ransac_model": "affine", "match_precision": "float32"}[name]
        changed = dataclasses.replace(base, **{section: dataclasses.replace(getattr(base, section), **{name: new})})
        assert changed.scoring_key() != base.scoring_key(), f"{section}.{name} does not change the key"
        checked += 1
    assert checked == len(settings) - sum(n in ("top_k", "threshold", "target_far", "auto_calibrate") for n in settings) >= 2


def test_the_scoring_key_ignores_what_does_not_change_scores():
    base = Config().scoring_key()
    for change in ({"runtime.threads": "1"}, {"index.backend": "flat"}, {"limits.min_side": "32"},
                   {"service.port": "9000"}, {"decision.top_k": "3"}):
        assert Config().with_overrides(change).scoring_key() == base


def test_fusion_weights_are_refused_below_zero():
    with pytest.raises(ConfigError):
        Config().with_overrides({"rerank.weight_colour": "-1"})
