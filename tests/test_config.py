from pathlib import Path

import pytest

from instrec.config import Config, parse_assignments
from instrec.decision.calibration import Prior
from instrec.errors import ConfigError
from instrec.profiles import Tuning, profile_names, profile_tuning, register_profile


def test_overrides_are_typed():
    config = Config().with_overrides(
        {
            "index.backend": "flat",
            "rerank.enabled": "no",
            "decision.threshold": "0.5",
            "runtime.batch_size": "8",
            "service.api_keys": "k1, k2",
            "tuning.rerank.ratio": "0.7",
        }
    )
    assert config.index.backend == "flat"
    assert config.rerank.enabled is False
    assert config.decision.threshold == 0.5
    assert config.runtime.batch_size == 8
    assert config.service.api_keys == ("k1", "k2")
    assert config.tuning.rerank.ratio == 0.7 and config.tuning.rerank.shortlist == Tuning().rerank.shortlist


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("index.backnd", "flat", "unknown setting 'index.backnd'"),
        ("nosuch.key", "1", "unknown setting 'nosuch'"),
        ("index.backend", "annoy", "index.backend: Input should be 'auto', 'flat', 'ivf' or 'milvus'"),
        ("runtime.batch_size", "many", "runtime.batch_size: .*integer"),
        ("rerank.enabled", "maybe", "rerank.enabled: .*boolean"),
        ("index", "flat", "is a section"),
        ("tuning.decision.competitor_weight", "1.5", "competitor_weight"),
        ("tuning.decision.competitors", "0", "competitors"),
        ("tuning.rerank.local_shortlist", "-1", "local_shortlist"),
        ("tuning.rerank.match_precision", "float8", "match_precision"),
        ("tuning.rerank.weight_colour", "-1", "weight_colour"),
        ("tuning.rerank.nosuch", "1", "unknown setting 'tuning.rerank.nosuch'"),
        ("profile", "nosuch", "unknown profile 'nosuch'"),
    ],
)
def test_bad_settings_are_refused(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Config().with_overrides({key: value})


def test_environment_then_explicit_overrides(monkeypatch):
    monkeypatch.setenv("INSTREC_HOME", "/tmp/x")
    monkeypatch.setenv("INSTREC_INDEX__BACKEND", "ivf")
    monkeypatch.setenv("INSTREC_TUNING__RERANK__RATIO", "0.6")
    monkeypatch.setenv("OTHER", "1")
    config = Config.load(overrides={"index.backend": "flat"})
    assert config.home == Path("/tmp/x") and config.index.backend == "flat" and config.tuning.rerank.ratio == 0.6
    assert Config.load(home="elsewhere").home == Path("elsewhere")


@pytest.mark.parametrize("name", ["INSTREC_NOSUCH", "INSTREC_INDEX__BACKND"])
def test_unknown_environment_variables_are_refused(monkeypatch, name):
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError, match="unknown setting"):
        Config.load()


def test_optional_values_accept_none():
    assert (
        Config().with_overrides({"decision.threshold": "0.5"}).with_overrides({"decision.threshold": "none"}).decision.threshold
        is None
    )


def test_assignments_need_equals():
    assert parse_assignments(["a.b=c=d"]) == {"a.b": "c=d"}
    with pytest.raises(ConfigError):
        parse_assignments(["index.backend"])


def test_a_profile_brings_its_constants_and_tuning_applies_on_top():
    register_profile("wide-test", Tuning().model_copy(update={"rerank": Tuning().rerank.model_copy(update={"shortlist": 40})}))
    assert "wide-test" in profile_names() and profile_tuning("wide-test").rerank.shortlist == 40
    wide = Config().with_overrides({"tuning.rerank.ratio": "0.7", "profile": "wide-test"})
    assert wide.tuning.rerank.shortlist == 40 and wide.tuning.rerank.ratio == 0.7
    assert wide.with_overrides({"profile": "objects"}).tuning == Tuning()  # back to the default's constants
    with pytest.raises(ValueError, match="already registered"):
        register_profile("wide-test", Tuning())


def _changed(value):
    """Another valid value of a setting of ``value``'s type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.5
    return {
        "efficientnet_lite0": "efficientnet_lite1",
        "generic": "v.npz",
        "homography": "affine",
        "auto": "float32",
        "hog+cnn": "hog",
        "fp32": "int8",
        None: "file.npz",
    }[value]


def _leaves(values, prefix=""):
    for name, value in values.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


@pytest.mark.parametrize(
    ("profile", "section"), [("objects", "descriptor"), ("objects", "rerank"), ("objects", "tuning"), ("faces", "tuning")]
)
def test_every_setting_that_changes_scores_changes_the_scoring_key(profile, section):
    """Calibrations are stored per key: one made under other scoring must not be reused. A tuning
    constant a profile leaves unset (None) is checked under the profile that sets it."""
    base = Config().with_overrides({"profile": profile})
    values = getattr(base, section).model_dump(exclude_none=section == "tuning")
    settings = list(_leaves(values, f"{section}."))
    for name, value in settings:
        assert base.with_overrides({name: _changed(value)}).scoring_key() != base.scoring_key(), name
    assert len(settings) >= 2


def test_the_scoring_key_ignores_what_does_not_change_scores():
    base = Config().scoring_key()
    for change in (
        {"runtime.threads": "1"},
        {"index.backend": "flat"},
        {"limits.min_side": "32"},
        {"service.port": "9000"},
        {"decision.top_k": "3"},
        {"decision.threshold": "0.5"},
        {"decision.target_far": "0.05"},
        {"decision.auto_calibrate": "false"},
    ):
        assert Config().with_overrides(change).scoring_key() == base


def test_milvus_index_params_come_as_json_from_the_command_line():
    config = Config.load(overrides={"index.backend": "milvus", "index.milvus_params": '{"nlist": 1024}'})
    assert config.index.milvus_params == {"nlist": 1024}
    with pytest.raises(ConfigError, match="index.milvus_params"):
        Config.load(overrides={"index.milvus_params": "{nlist"})
    with pytest.raises(ConfigError, match="index.milvus_collection"):
        Config.load(overrides={"index.milvus_collection": "has space"})


def test_a_postgres_catalog_is_a_url_and_holds_collections_too():
    assert Config().catalog.url is None  # the SQLite file in the home
    assert (
        Config().with_overrides({"catalog.url": "postgresql:///lib?host=/run/pg"}).catalog.url == "postgresql:///lib?host=/run/pg"
    )
    with pytest.raises(ConfigError, match="catalog.url"):
        Config().with_overrides({"catalog.url": "mysql://db/lib"})
    assert Config().with_overrides({"catalog.url": "postgresql://db/lib", "collection": "shoes"}).collection == "shoes"


def test_fp32_leaves_the_descriptor_id_as_it_was_and_int8_changes_it():
    plain, int8 = Config(), Config().with_overrides({"descriptor.precision": "int8"})
    assert "precision" not in plain.descriptor_key() and int8.descriptor_key()["precision"] == "int8"
    assert plain.scoring_key() != int8.scoring_key()
    assert Prior.shipped(plain.scoring_key()) is not None
