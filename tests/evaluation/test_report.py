import base64
import re

import numpy as np
import pytest

from instrec.errors import InstrecError
from instrec.evaluation import Candidate, QueryOutcome, Row, Run, Setting
from instrec.evaluation.report import WORST_FAILURES, failures, roc_curve, stage_medians, write_report

SECTIONS = (
    "settings",
    "accuracy-vs-shots",
    "scores--genuine-vs-impostor",
    "roc--known-vs-unknown-queries",
    "operating-point-at-the-calibrated-threshold",
    "reliability-of-the-confidence-shown",
    "latency-per-stage--median-ms-query",
    "20-worst-failures-per-row",
)


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_is_one_self_contained_file_with_every_section(compared, tmp_path):
    page = write_report(compared, tmp_path / "sub" / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    images = embedded_pngs(page)
    assert images and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    for row in compared:
        assert f"<td>{row.setting.name}</td><td>{row.shots}</td>" in page


def test_failure_strips_show_the_query_then_its_top_answers(compared, tmp_path):
    page = write_report(compared, tmp_path / "report.html").read_text()
    accept_all = compared[2]  # every unknown query is accepted: each is a failure
    expected = min(WORST_FAILURES, accept_all.run.summary["unknown_queries"])
    assert expected > 0
    section = page.split("<h3>accept-all (1 shot)</h3>")[1].split("<h3>")[0]
    strips = section.split("<div class='strip'>")[1:]
    assert len(strips) == expected
    for strip in strips:
        assert strip.count("<figure>") == 1 + len(failures(accept_all.run.outcomes)[0].top)
        assert "truth: unknown" in strip and "score " in strip


def outcome(truth, top, score, unknown=False):
    return QueryOutcome(
        truth,
        [c.instance_id for c in top],
        score,
        unknown,
        [],
        1,
        5.0,
        query="missing.jpg",
        top=tuple(top),
        timing_ms={"embed": 3.0, "local": 1.0, "total": 4.0},
    )


def test_worst_failures_are_wrong_answers_and_accepted_unknowns_most_confident_first():
    a, b = Candidate("a", "A", 0.9, "a.jpg"), Candidate("b", "B", 0.8, "b.jpg")
    outcomes = [
        outcome("a", [a, b], 0.9),  # right
        outcome("a", [b, a], 0.6),  # wrong, not confident
        outcome("b", [a, b], 0.95),  # wrong, confident
        outcome(None, [a], 0.7),  # unknown accepted
        outcome(None, [a], 0.99, unknown=True),  # unknown rejected: no failure
    ]
    assert [o.top_score for o in failures(outcomes)] == [0.95, 0.7, 0.6]
    assert len(failures(outcomes, limit=1)) == 1


def test_known_queries_rejected_as_unknown_are_among_the_failures_lowest_first():
    a, b = Candidate("a", "A", 0.9, "a.jpg"), Candidate("b", "B", 0.8, "b.jpg")
    wrong = [outcome("b", [a, b], 0.9 - i / 100) for i in range(30)]
    rejected = [outcome("a", [a], 0.3 + i / 100, unknown=True) for i in range(3)]
    shown = failures(wrong + rejected, limit=10)
    assert len(shown) == 10 and [o.top_score for o in shown[-3:]] == [0.3, 0.31, 0.32]
    assert shown[0].top_score == 0.9  # the most confident wrong answer still leads


def test_the_operating_point_and_the_reliability_diagram_are_reported(compared, tmp_path):
    page = write_report(compared, tmp_path / "report.html").read_text()
    point = page.split('<section id="operating-point-at-the-calibrated-threshold">')[1].split("</section>")[0]
    assert "accepted correct" in point and "false accept" in point and point.count("<tr>") == 1 + len(compared)
    assert "ECE" in page.split('<section id="reliability-of-the-confidence-shown">')[1]


def test_roc_curve_runs_from_nothing_to_everything_accepted():
    far, tar = roc_curve(np.array([0.9, 0.8, 0.4]), np.array([0.5, 0.1]))
    assert (far[0], tar[0]) == (0.0, 0.0) and (far[-1], tar[-1]) == (1.0, 1.0)
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0)
    assert tar[np.searchsorted(far, 0.0, side="right") - 1] == pytest.approx(2 / 3)  # at FAR 0: 0.9 and 0.8 pass


def test_stage_medians_follow_the_timing_keys():
    a = Candidate("a", "A", 0.9, "a.jpg")
    rows = [Row(Setting("x"), 1, Run({}, [outcome("a", [a], 0.9), outcome("a", [a], 0.8)]))]
    stages, medians = stage_medians(rows)
    assert stages == ["embed", "local"] and medians.tolist() == [[3.0, 1.0]]


def test_report_without_unknowns_or_images_says_so(tmp_path):
    a = Candidate("a", "A", 0.9, str(tmp_path / "gone.jpg"))
    outcomes = [outcome("a", [a], 0.9), outcome("b", [a], 0.8)]
    summary = {"dataset": "d", "shots": 1, "top1": 0.5, "top5": 0.5, "auroc": None, "threshold": 0.5, "ms_per_query": 5.0}
    page = write_report([Row(Setting("only"), 1, Run(summary, outcomes))], tmp_path / "r.html").read_text()
    assert "No unknown queries" in page
    assert "not readable" in page  # a failure whose files are gone still gets its strip
    assert "<th>row</th><th>embed</th><th>local</th><th>end to end</th>" in page  # whatever stages timing_ms has
    with pytest.raises(InstrecError):
        write_report([], tmp_path / "empty.html")
