import json

import pytest
from typer.testing import CliRunner

from instrec.cli import app
from instrec.config import Config
from instrec.errors import ConfigError
from instrec.evaluation import compare, parse_setting, settings_from_options
from instrec.evaluation.compare import BASELINE, COLUMNS, parse_shots, table_cells


def test_inline_setting_values_may_hold_commas():
    setting = parse_setting("keys: service.api_keys=k1,k2,k3, tuning.rerank.ratio=0.7")
    assert setting.name == "keys"
    assert setting.overrides == {"service.api_keys": "k1,k2,k3", "tuning.rerank.ratio": "0.7"}
    assert Config().with_overrides(setting.overrides).service.api_keys == ("k1", "k2", "k3")
    assert parse_setting("same-as-base:").overrides == {}


@pytest.mark.parametrize("text", ["decision.threshold=0.5", "name: decision.threshold", "a=b: c.d=1"])
def test_malformed_settings_are_refused(text):
    with pytest.raises(ConfigError):
        parse_setting(text)


def test_baseline_first_names_unique_and_json_files(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"wide": {"tuning.rerank.shortlist": 50}, "flat": {"index.backend": "flat"}}))
    settings = settings_from_options([str(path), "strict: decision.threshold=0.9"])
    assert [s.name for s in settings] == [BASELINE, "wide", "flat", "strict"]
    assert settings[1].overrides == {"tuning.rerank.shortlist": 50}
    with pytest.raises(ConfigError, match="unique"):
        settings_from_options(["baseline: decision.top_k=3"])
    with pytest.raises(ConfigError, match="unique"):
        settings_from_options(["a: decision.top_k=3", "a: decision.top_k=4"])
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError):
        settings_from_options([str(tmp_path / "bad.json")])


def test_shots_lists():
    assert parse_shots("1") == [1]
    assert parse_shots("1, 2,3,2") == [1, 2, 3]
    for bad in ("0", "one", ""):
        with pytest.raises(ConfigError):
            parse_shots(bad)


def test_a_bad_setting_fails_before_anything_runs(dataset):
    settings = settings_from_options(["typo: decision.treshold=0.5"])
    with pytest.raises(ConfigError, match="treshold"):
        compare(dataset, settings, [1], base=Config(), embedder=object())  # an embedder that would break if used


def test_one_row_per_setting_and_shots_with_the_overrides_applied(compared):
    assert [(r.setting.name, r.shots) for r in compared] == [(BASELINE, 1), (BASELINE, 2), ("accept-all", 1), ("accept-all", 2)]
    baseline, _, accept_all, _ = (r.run.summary for r in compared)
    assert baseline["gallery_images"] == 6 and compared[1].run.summary["gallery_images"] == 12
    assert accept_all["false_accept"] == 1.0 and accept_all["threshold"] is not None
    assert baseline["false_accept"] < 1.0  # the calibrated threshold rejects some unknowns
    assert baseline["top1"] == accept_all["top1"]  # the threshold changes the decision, never the ranking
    cells = table_cells(compared[2])
    assert cells[:2] == ["accept-all", "1"] and len(cells) == 2 + len(COLUMNS)
    assert compared[2].to_dict()["overrides"] == {"decision.threshold": "-1"}


def test_outcomes_keep_what_the_report_shows(compared):
    outcome = next(o for o in compared[0].run.outcomes if o.truth is not None)
    assert outcome.query.endswith(".jpg") and outcome.truth in outcome.query
    assert 1 <= len(outcome.top) <= 3 and outcome.top[0].instance_id == outcome.ranked[0]
    assert outcome.top[0].image.endswith("0-original.jpg")  # 1 shot: the enrolled image is the original
    assert {"embed", "search", "total"} <= set(outcome.timing_ms)


@pytest.mark.slow
def test_cli_compare_prints_one_json_object_and_writes_the_report(dataset, tmp_path):
    report = tmp_path / "report.html"
    run = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(dataset),
            "--shots",
            "1,2",
            "--unknown-fraction",
            "0.25",
            "--set",
            "rerank.enabled=false",
            "--compare",
            "strict: decision.threshold=2",
            "--json",
            "--report",
            str(report),
        ],
    )
    assert run.exit_code == 0, run.output
    payload = json.loads(run.stdout)
    assert payload["dataset"] == str(dataset)
    assert [(r["setting"], r["shots"]) for r in payload["rows"]] == [
        ("baseline", 1),
        ("baseline", 2),
        ("strict", 1),
        ("strict", 2),
    ]
    assert all(r["false_reject"] == 1.0 for r in payload["rows"][2:])  # nothing scores 2: all "unknown"
    assert report.is_file() and "strict (2 shots)" in report.read_text()


def test_cli_refuses_a_malformed_compare(dataset):
    run = CliRunner().invoke(app, ["evaluate", str(dataset), "--compare", "decision.threshold=2"])
    assert run.exit_code == 2 and "--compare expects" in run.output
