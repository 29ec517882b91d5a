"""The faces profile through the Recognizer: enrol a person, recognise them, forget them; the library
remembers which pipeline made its vectors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from instrec.config import Config
from instrec.errors import DescriptorMismatchError, UnknownImageError, UnusableShotError
from instrec.recognizer import Recognizer
from tests.conftest import shared_data
from tests.photos import altered_views, sample_photo
from tests.service.helpers import jpeg

pytest.importorskip("dlib", reason="the faces extra is not installed")


@pytest.fixture
def faces_config(tmp_path: Path) -> Config:
    return Config.load(home=tmp_path / "people", overrides={"profile": "faces"})


def test_the_faces_profile_recognises_an_enrolled_person_and_nobody_else(faces_config):
    astronaut = sample_photo("astronaut")
    with Recognizer(faces_config) as recognizer:
        assert recognizer.stats()["dim"] == 128 and recognizer.library.verifier is None  # no local features
        recognizer.enroll([astronaut], instance_id="eileen", label="Eileen Collins")
        for name, view in altered_views(astronaut).items():
            result = recognizer.recognize(view)
            assert not result.unknown and result.matches[0].instance_id == "eileen", name
        for stranger in ("coffee", "chelsea", "camera"):  # answered from the whole photo, under the profile's threshold
            assert recognizer.recognize(sample_photo(stranger)).unknown, stranger


def test_until_calibrated_the_threshold_rises_with_the_faces_a_stranger_is_compared_with(faces_config):
    astronaut = sample_photo("astronaut")
    with Recognizer(faces_config) as recognizer:
        recognizer.enroll([astronaut], instance_id="eileen")
        alone = recognizer.threshold
        recognizer.enroll([ImageOps.mirror(astronaut)], instance_id="eileen", existing=True)
        recognizer.enroll([altered_views(astronaut)["crop"]], instance_id="twin")
        assert alone < recognizer.threshold < 1.0 and recognizer.stats()["calibration"] == "default"
        assert recognizer.recognize(altered_views(astronaut)["relit"]).best is not None  # still recognised


def _two_of(photo: Image.Image) -> Image.Image:
    """The photo beside a copy of itself at half size: two faces, the larger on the left."""
    group = Image.new("RGB", (photo.width * 3 // 2, photo.height))
    group.paste(photo, (0, 0))
    group.paste(photo.resize((photo.width // 2, photo.height // 2)), (photo.width, 0))
    return group


def test_each_face_in_a_photo_is_recognised_with_its_box_largest_first(faces_config):
    astronaut = sample_photo("astronaut")
    group = _two_of(astronaut)
    with Recognizer(faces_config) as recognizer:
        recognizer.enroll([astronaut], instance_id="eileen")
        faces = recognizer.recognize_faces(group)
        assert [f.best.instance_id if f.best else None for f in faces] == ["eileen", "eileen"]
        big, small = (f.box for f in faces)
        assert big is not None and small is not None
        assert big.right <= astronaut.width <= small.left  # each box on its own copy
        assert (big.right - big.left) > (small.right - small.left)
        assert recognizer.recognize(group).box == big  # plain recognize: the largest face
        assert faces[0].to_dict()["box"] == big.to_dict()


def test_a_photo_without_a_face_is_answered_no_face(faces_config):
    with Recognizer(faces_config) as recognizer:
        recognizer.enroll([sample_photo("astronaut")], instance_id="eileen")
        (answer,) = recognizer.recognize_faces(sample_photo("coffee"))
        assert answer.no_face and answer.unknown and answer.box is None and answer.to_dict()["no_face"]
        assert answer.timing_ms["total"] > 0  # the search for a face took time, and says so


def test_the_service_answers_every_face_with_its_box_and_a_photo_without_one(faces_config):
    from instrec.service.app import create_app
    from tests.service.helpers import TestClient, recognize

    with Recognizer(faces_config.with_overrides({"service.auth": "false"})) as recognizer:
        recognizer.enroll([sample_photo("astronaut")], instance_id="eileen")
        with TestClient(create_app(recognizer.config, recognizer)) as client:
            group = recognize(client, jpeg(_two_of(sample_photo("astronaut"))))
            assert group.status_code == 200, group.text
            body = group.json()
            assert [face["best"]["instance_id"] for face in body["faces"]] == ["eileen", "eileen"]
            assert body["box"] == body["faces"][0]["box"] and body["box"]["right"] > body["box"]["left"]
            empty = recognize(client, jpeg(sample_photo("coffee")))
            assert empty.status_code == 200, empty.text
            assert (empty.json()["no_face"], empty.json()["unknown"], empty.json()["faces"]) == (True, True, [])


def test_enrolment_refuses_a_photo_without_a_face_unless_told_to_skip_it(faces_config):
    with Recognizer(faces_config) as recognizer:
        with pytest.raises(UnusableShotError, match="no face found"):
            recognizer.enroll([sample_photo("astronaut"), sample_photo("coffee")], instance_id="eileen")
        assert recognizer.gallery.count() == 0  # nothing half-enrolled
        result = recognizer.enroll([sample_photo("astronaut"), sample_photo("coffee")], instance_id="eileen", skip_bad=True)
        assert len(result.added) == 1 and [type(e) for e in result.errors] == [UnusableShotError]
        assert recognizer.stats()["images"] == 1


def test_a_faces_library_refuses_the_objects_pipeline_and_back(faces_config, embedder):
    with Recognizer(faces_config) as recognizer:
        recognizer.enroll([sample_photo("astronaut")], instance_id="eileen")
        assert recognizer.stats()["descriptor"]["embedder"].startswith("dlib-face")
    objects = faces_config.with_overrides({"profile": "objects"})
    with pytest.raises(DescriptorMismatchError, match="dlib-face"):
        Recognizer(objects, embedder=embedder).library
    with Recognizer(objects.with_overrides({"home": str(faces_config.home.parent / "things")}), embedder=embedder) as things:
        things.enroll([sample_photo("coffee")], instance_id="coffee")
    with pytest.raises(DescriptorMismatchError):
        Recognizer(faces_config.with_overrides({"home": str(things.config.home)})).library


def test_removing_a_person_removes_their_vectors_and_photos(faces_config):
    with Recognizer(faces_config) as recognizer:
        recognizer.enroll([sample_photo("astronaut"), altered_views(sample_photo("astronaut"))["relit"]], instance_id="eileen")
        recognizer.enroll([altered_views(sample_photo("astronaut"), seed=1)["crop"]], instance_id="other")
        image_ids = [image.id for image in recognizer.gallery.images("eileen")]
        recognizer.remove("eileen")
        stats = recognizer.stats()
        assert (stats["instances"], stats["images"], stats["index"]["vectors"]) == (1, 1, 1)
        for image_id in image_ids:
            with pytest.raises(UnknownImageError):
                recognizer.gallery.image_bytes(image_id)
        assert len([p for p in (faces_config.home / "images").rglob("*") if p.is_file()]) == 1  # the other person's photo
        assert recognizer.recognize(sample_photo("astronaut")).matches[0].instance_id == "other"


def test_no_file_of_the_home_holds_a_removed_persons_photo_or_vector(faces_config, tmp_path):
    """Scanned while the library stays open, as a service keeps running after a deletion request."""
    photo = tmp_path / "eileen.jpg"
    sample_photo("astronaut").save(photo, quality=90)
    with Recognizer(faces_config) as recognizer:
        recognizer.enroll([photo], instance_id="eileen")
        ((_, _, vectors),) = list(recognizer.library.catalog.vectors.iterate(128))
        recognizer.enroll([altered_views(sample_photo("astronaut"), seed=1)["crop"]], instance_id="other")
        recognizer.library.save()  # the person is in the saved index too before the removal
        traces = {"photo": photo.read_bytes()[5000:5064], "vector": vectors[0].tobytes()[:32]}
        assert all(any(trace in f.read_bytes() for f in _files(faces_config.home)) for trace in traces.values())
        recognizer.remove("eileen")
        for name, trace in traces.items():
            assert not [f for f in _files(faces_config.home) if trace in f.read_bytes()], name
        assert recognizer.recognize(sample_photo("astronaut")).matches[0].instance_id == "other"


def _files(home: Path) -> list[Path]:
    return [path for path in home.rglob("*") if path.is_file()]


@pytest.mark.data
def test_att_faces_one_shot_top1():
    from instrec.evaluation.runner import evaluate

    summary = evaluate(
        shared_data("att-faces"),
        shots=1,
        unknown_fraction=0.2,
        seed=0,
        config=Config.load(overrides={"profile": "faces"}),
        calibrate=False,
    )
    assert summary["top1"] >= 0.97


def _holds(home: Path, chunk: bytes) -> list[Path]:
    return [path for path in home.rglob("*") if path.is_file() and chunk in path.read_bytes()]


def test_removing_a_person_leaves_no_trace_of_their_photo_or_vector_in_any_file(faces_config):
    photo = jpeg(altered_views(sample_photo("astronaut"), seed=2)["relit"])
    with Recognizer(faces_config) as recognizer:
        recognizer.enroll([photo], instance_id="eileen")
        recognizer.enroll([sample_photo("camera")], instance_id="other", skip_bad=True)
        vector = recognizer.embedder.embed([Image.open(io.BytesIO(photo))])[0].astype(np.float32).tobytes()
        original = photo[len(photo) // 2 : len(photo) // 2 + 256]  # past the header every JPEG shares
        assert _holds(faces_config.home, original) and _holds(faces_config.home, vector[:64])  # the scan sees them
        recognizer.remove("eileen")
    assert _holds(faces_config.home, original) == [] and _holds(faces_config.home, vector[:64]) == []


def test_a_faces_library_told_not_to_keep_originals_stores_no_photo(faces_config):
    photo = jpeg(sample_photo("astronaut"))
    with Recognizer(faces_config.with_overrides({"faces.keep_originals": "false"})) as recognizer:
        recognizer.enroll([photo], instance_id="eileen")
        assert recognizer.recognize(sample_photo("astronaut")).best is not None
    assert _holds(faces_config.home, photo[len(photo) // 2 : len(photo) // 2 + 256]) == []


def test_the_cli_lists_every_face_and_says_when_a_photo_has_none(faces_config, tmp_path):
    import json

    from typer.testing import CliRunner

    from instrec.cli import app

    astronaut = sample_photo("astronaut")
    with Recognizer(faces_config) as recognizer:
        recognizer.enroll([astronaut], instance_id="eileen")
    _two_of(astronaut).save(tmp_path / "group.jpg")
    sample_photo("coffee").save(tmp_path / "coffee.jpg")
    options = ["--home", str(faces_config.home), "--set", "profile=faces"]
    answer = CliRunner().invoke(app, ["recognize", str(tmp_path / "group.jpg"), str(tmp_path / "coffee.jpg"), *options, "--json"])
    assert answer.exit_code == 0, answer.output
    group, coffee = json.loads(answer.stdout)["results"]
    assert [face["matches"][0]["instance_id"] for face in group["faces"]] == ["eileen", "eileen"] and group["box"]
    assert coffee["no_face"] and coffee["faces"] == []
    text = CliRunner().invoke(app, ["recognize", str(tmp_path / "coffee.jpg"), *options])
    assert "nofacefound" in "".join(text.stdout.split())  # rich wraps long lines
