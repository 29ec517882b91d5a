from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from instrec.config import Config
from instrec.demo import sample_photo
from instrec.errors import ConfigError
from instrec.images.views import VIEW_FAMILIES, support_views
from instrec.recognizer import Recognizer


def test_views_are_deterministic_and_named_by_family():
    photo = sample_photo("coffee")
    views = support_views(photo, ("crops", "rotations", "light"))
    again = support_views(photo, ("crops", "rotations", "light"))
    assert {name.split("-")[0].rstrip("+-0123456789") for name in views} == {"crop", "rotate", "light"}
    for name, view in views.items():
        assert view.mode == "RGB" and min(view.size) >= 0.5 * min(photo.size)
        np.testing.assert_array_equal(np.asarray(view), np.asarray(again[name]))
    assert support_views(photo, ()) == {}


def test_unknown_families_are_refused():
    with pytest.raises(ConfigError, match="support_views"):
        Config().with_overrides({"decision.support_views": "crops,blur"})
    assert Config().with_overrides({"decision.support_views": "crops,light"}).decision.support_views == ("crops", "light")


def test_support_views_add_vectors_that_match_partial_views(config, embedder):
    photo = sample_photo("astronaut")
    w, h = photo.size
    partial = photo.crop((0, 0, round(0.7 * w), round(0.7 * h)))
    scores = {}
    for families in ((), ("crops",)):
        home = config.home / ("with" if families else "without")
        raw_scores = {"rerank.enabled": False, "decision.competitor_weight": 0}  # the cosine of the best vector
        cfg = dataclasses.replace(config.with_overrides(raw_scores), home=home)
        cfg = dataclasses.replace(cfg, decision=dataclasses.replace(cfg.decision, support_views=families))
        with Recognizer(cfg, embedder=embedder) as rec:
            rec.enroll([photo], instance_id="astronaut")
            rec.enroll([sample_photo("coffee")], instance_id="coffee")
            assert rec.stats()["vectors"] == 2 * (1 + (len(VIEW_FAMILIES["crops"](photo)) if families else 0))
            scores[families] = rec.recognize(partial).matches[0].score
    assert scores[("crops",)] > 0.99 > scores[()]
