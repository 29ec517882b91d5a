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
