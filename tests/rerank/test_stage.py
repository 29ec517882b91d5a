"""Re-ranking through the public Recognizer: enrol, verify, remove, crash/reopen, settings guard."""

from __future__ import annotations

import dataclasses
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from instrec.config import Config
from instrec.errors import DescriptorMismatchError
from instrec.recognizer import Recognizer
from instrec.rerank import LocalFeatures

from .conftest import PHOTOS, warped

ENROLLED = PHOTOS[:4]
CLUTTER = PHOTOS[4]  # never enrolled: the background the queries are pasted onto


def open_recognizer(config: Config, embedder, **rerank) -> Recognizer:
    """``enabled`` is the user's switch; the rest are the profile's re-ranking constants."""
    overrides = {("rerank." if name == "enabled" else "tuning.rerank.") + name: value for name, value in rerank.items()}
    return Recognizer(config.with_overrides(overrides), embedder=embedder)


@pytest.fixture
def enrolled(config, embedder, photos):
    with open_recognizer(config, embedder) as rec:
        for name in ENROLLED:
            rec.enroll([photos[name]], instance_id=name)
        yield rec


def query(photos, name: str, seed: int = 0):
    return warped(photos[name], seed, background=photos[CLUTTER])


def local_images(rec: Recognizer, photos, name: str) -> set[int]:
    features = rec.library.verifier.extract(query(photos, name))
    return {image for image, _ in rec.library.local_search([features], 10)[0]}


@pytest.mark.parametrize("name", ENROLLED)
def test_a_pasted_warped_view_is_recognised_with_geometric_evidence(enrolled, photos, name):
    result = enrolled.recognize(query(photos, name, seed=3), k=3, with_images=True)
    assert result.matches[0].instance_id == name
    assert result.images[0].image_id == result.matches[0].image_id  # image ranking is the verified one
    assert len({hit.image_id for hit in result.images}) == len(result.images) == len(ENROLLED)
    assert result.matches[0].inliers >= 15
    assert all(m.inliers < result.matches[0].inliers for m in result.matches[1:])
    assert {"local_features", "verify"} <= result.timing_ms.keys()


def test_the_local_shortlist_adds_candidates_to_the_global_ones(enrolled, config, embedder, photos):
    """The rocket fills a quarter of a cluttered photo: the global search ranks another image
    first, and the local index brings the rocket in."""
    matches = {}
    for local_shortlist in (0, 2):
        with open_recognizer(config, embedder, shortlist=1, local_shortlist=local_shortlist) as rec:
            matches[local_shortlist] = rec.recognize(query(photos, "rocket", seed=3), k=4).matches
    assert len(matches[0]) == 1 and matches[0][0].instance_id != "rocket"
    assert matches[2][0].instance_id == "rocket"
    # Only verified candidates are ranked; the global best may also be one of the local ones.
    assert 2 <= len(matches[2]) <= 3


def test_removed_instances_leave_the_local_index(enrolled, photos):
    image_ids = {i.id for i in enrolled.gallery.images("coffee")}
    assert image_ids <= local_images(enrolled, photos, "coffee")
    enrolled.remove("coffee")
    assert not image_ids & local_images(enrolled, photos, "coffee")
    assert all(m.instance_id != "coffee" for m in enrolled.recognize(query(photos, "coffee")).matches)


def test_a_lost_local_index_is_rebuilt_from_the_catalog(enrolled, config, embedder, photos):
    image_ids = {i.id for i in enrolled.gallery.images("rocket")}
    enrolled.close()
    shutil.rmtree(config.home / "index")
    with open_recognizer(config, embedder) as reopened:
        assert image_ids <= local_images(reopened, photos, "rocket")


def test_images_enrolled_after_the_last_save_are_replayed(enrolled, config, embedder, photos):
    enrolled.library.save()
    enrolled.enroll([photos[CLUTTER]], instance_id=CLUTTER)  # journal moves past the saved index
    added = {i.id for i in enrolled.gallery.images(CLUTTER)}
    with open_recognizer(config, embedder) as other_process:
        features = other_process.library.verifier.extract(photos[CLUTTER])
        assert added <= {i for i, _ in other_process.library.local_search([features], 5)[0]}


def test_other_feature_settings_are_refused(enrolled, config, embedder):
    enrolled.close()
    with pytest.raises(DescriptorMismatchError, match="local features"):
        open_recognizer(config, embedder, max_keypoints=100).library


def test_with_reranking_off_nothing_local_is_stored(config, embedder, photos):
    with open_recognizer(config, embedder, enabled=False) as rec:
        rec.enroll([photos["astronaut"]], instance_id="astronaut")
        rec.enroll([photos["coffee"]], instance_id="coffee")
        result = rec.recognize(query(photos, "astronaut"))
        assert result.matches[0].inliers is None
        assert "verify" not in result.timing_ms
        assert rec.library.catalog.features.missing() == [i.id for n in ("astronaut", "coffee") for i in rec.gallery.images(n)]


def test_images_enrolled_with_reranking_off_can_be_given_features_later(config, embedder, photos):
    with open_recognizer(config, embedder, enabled=False) as rec:
        rec.enroll([photos["chelsea"]], instance_id="chelsea")
        rec.enroll([photos["rocket"]], instance_id="rocket")
    with open_recognizer(config, embedder) as rec:
        assert rec.extract_missing_local_features() == 2
        assert rec.extract_missing_local_features() == 0
        assert rec.recognize(query(photos, "chelsea")).matches[0].inliers >= 15


def test_extract_local_from_the_cli(config, embedder, photos):
    from typer.testing import CliRunner

    from instrec.cli import app

    with open_recognizer(config, embedder, enabled=False) as rec:
        rec.enroll([photos["coffee"]], instance_id="coffee")
    result = CliRunner().invoke(app, ["extract-local", "--home", str(config.home), "--json"])
    assert result.exit_code == 0, result.output
    assert '"extracted": 1' in result.output
    result = CliRunner().invoke(app, ["extract-local", "--home", str(config.home), "--set", "rerank.enabled=false"])
    assert result.exit_code == 2 and "re-ranking is off" in result.output


def recoloured(photo, hue_shift: int = 60):
    """The same photo with every hue turned: identical texture, other colours (a flavour twin)."""
    hsv = cv2.cvtColor(np.asarray(photo.convert("RGB")), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + hue_shift) % 180
    return Image.fromarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_colour_tells_a_recoloured_twin_from_the_original_in_the_fused_score(config, embedder, photos, name):
    twin = recoloured(photos[name])
    shot = warped(twin, 5)  # on plain grey: the query's colour is the whole photo's
    margins = {}
    for weight in (0.0, 0.25):
        with open_recognizer(config, embedder, weight_colour=weight) as rec:
            if weight == 0.0:
                rec.enroll([photos[name]], instance_id="original")
                rec.enroll([twin], instance_id="twin")
                rec.enroll([photos["rocket"]], instance_id="rocket")
            result = rec.recognize(shot, k=3, with_images=True)
            scores = {hit.instance_id: hit.score for hit in result.images}  # fused, before the decision
            margins[weight] = scores["twin"] - scores["original"]
            assert result.matches[0].instance_id == "twin"
    assert margins[0.25] > 0
    assert margins[0.25] > margins[0.0] + 0.01, margins


def test_images_stored_without_colour_are_given_it(enrolled, photos):
    catalog = enrolled.library.catalog
    stored = catalog.features.of_images([i.id for n in ENROLLED for i in enrolled.gallery.images(n)])
    for image, (_, data) in list(stored.items())[:2]:
        features = LocalFeatures.unpack(data)
        catalog.features.put(image, dataclasses.replace(features, colour=None).pack())
    assert sum(not LocalFeatures.packed_complete(s) for s in catalog.features.sizes().values()) == 2
    assert enrolled.extract_missing_local_features() == 2
    assert all(LocalFeatures.packed_complete(s) for s in catalog.features.sizes().values())
    assert enrolled.extract_missing_local_features() == 0
    assert enrolled.recognize(query(photos, "rocket")).matches[0].instance_id == "rocket"
