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
    ("query.region_penalty", "-0.1", "region_penalty"),
    ("query.expansion", "-1", "expansion"),
    ("decision.competitor_weight", "1.5", "competitor_weight"),
    ("decision.competitors", "0", "competitors"),
    ("rerank.local_shortlist", "-1", "local_shortlist"),
    ("rerank.match_precision", "float8", "must be one of"),
    ("rerank.min_inlier_spread", "1.5", "min_inlier_spread"),
    ("rerank.hue_agreement", "-0.1", "hue_agreement"),
    ("rerank.colour_confirms", "1.5", "colour_confirms"),
    ("rerank.hue_near_inliers", "3", "hue_near_inliers"),
    ("rerank.second_look", "-1", "second_look"),
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


def test_every_setting_that_changes_query_scores_changes_the_query_key():
    """Calibrations are stored per key: one made under other query scoring must not be reused."""
    base = Config().query
    changed = [{"query.region_penalty": "0.25"}, {"query.region_neighbours": "20"}, {"query.region_levels": "3"},
               {"query.region_side": "384"}, {"query.expansion": "2"}]
    keys = {Config().with_overrides(change).query.key() for change in changed}
    assert len(keys) == len(changed) and base.key() not in keys
    assert Config().with_overrides({"query.region_levels": "0"}).query.key() == ""  # plain whole-image queries


def test_every_fusion_weight_changes_the_fusion_key():
    changed = [{f"rerank.{name}": "0.5"} for name in ("weight_global", "weight_local", "weight_inliers", "weight_colour")]
    changed += [{"rerank.inlier_floor": "4"}, {"rerank.inlier_midpoint": "8"}, {"rerank.inlier_width": "3"}]
    keys = {str(Config().with_overrides(change).rerank.fusion_key()) for change in changed}
    assert len(keys) == len(changed) and str(Config().rerank.fusion_key()) not in keys
    with pytest.raises(ConfigError):
        Config().with_overrides({"rerank.weight_colour": "-1"})
