"""Genuine and stranger scores measured through a ranking function (a stand-in for the recognizer)."""

from __future__ import annotations

from PIL import Image

from instrec.decision import InstanceScore
from instrec.decision.gallery import Shot, measure
from instrec.decision.probes import background_photos, strangers


def _ranking(photos: list[Image.Image]) -> list[list[InstanceScore]]:
    """Strangers (the shipped photos' sizes) match nothing well; probes rank their own instance 1
    first, a twin 2, then an unrelated 3."""
    shipped = {p.size for p in strangers()}
    out = []
    for photo in photos:
        if photo.size in shipped:
            out.append([InstanceScore(3, 0.2, 30, geometry=0.0)])
        else:
            out.append(
                [
                    InstanceScore(1, 0.9, 10, geometry=0.9),
                    InstanceScore(2, 0.6, 20, geometry=0.5),
                    InstanceScore(3, 0.3, 30, geometry=0.0),
                ]
            )
    return out


def _as_is(ranked: list[InstanceScore]) -> list[InstanceScore]:
    return ranked


def _holds_the_first(photo: Image.Image) -> bool:
    """A gallery that enrolled the first shipped scene photo."""
    return photo is background_photos()[0]


def test_probes_give_genuine_and_impostor_scores_and_strangers_theirs():
    shot = Shot(1, Image.new("RGB", (300, 200), (0, 200, 0)), seed=4)
    scores = measure(_ranking, _as_is, [shot], twins={}, holds=_holds_the_first)
    assert scores.genuine == [0.9, 0.9]  # two probes, own instance first
    assert scores.strangers == len(strangers()) - 2  # the enrolled picture and its crop are no strangers
    assert scores.impostor.count(0.6) == 2 and scores.impostor.count(0.2) == scores.strangers


def test_a_twin_holding_a_duplicate_image_is_no_impostor():
    shot = Shot(1, Image.new("RGB", (300, 200), (0, 200, 0)), seed=4)
    scores = measure(_ranking, _as_is, [shot], twins={1: {2}}, holds=_holds_the_first, with_strangers=False)
    assert scores.impostor == [0.3, 0.3] and scores.strangers == 0


def test_progress_is_reported_up_to_the_number_of_probes():
    seen: list[tuple[int, int]] = []
    shots = [Shot(1, Image.new("RGB", (300, 200), (0, 200, 0)), seed=s) for s in range(5)]
    measure(_ranking, _as_is, shots, twins={}, holds=_holds_the_first, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (10, 10) and [d for d, _ in seen] == sorted(d for d, _ in seen)
