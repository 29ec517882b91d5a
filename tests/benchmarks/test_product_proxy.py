import json

import cv2
import numpy as np
import pytest
from product_proxy import MANIFEST, ProxySpec, build_product_proxy

from instrec.errors import InstrecError
from instrec.evaluation import load_split
from tests.conftest import shared_data

SMALL = ProxySpec(
    seed=3,
    gallery_objects=4,
    twins=2,
    queries_per_object=2,
    unknown_objects=2,
    queries_per_unknown=3,
    scene_width=160,
    scene_height=120,
    catalogue_side=96,
)


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """Six coloured shapes on black, three slightly rotated views each (a COIL-like folder)."""
    root = tmp_path_factory.mktemp("objects")
    rng = np.random.default_rng(0)
    for number in range(6):
        colour = tuple(int(c) for c in rng.integers(60, 256, 3))
        for view, angle in enumerate((0, 15, 30)):
            image = np.zeros((96, 96, 3), np.uint8)
            cv2.ellipse(image, (48, 48), (36, 20 + 3 * number), angle, 0, 360, colour, cv2.FILLED)
            cv2.putText(image, str(number), (36, 58), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
            (root / f"obj{number}").mkdir(exist_ok=True)
            cv2.imwrite(str(root / f"obj{number}" / f"obj{number}__{angle}.png"), image)
    return root


def files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_is_what_the_evaluator_reads(objects, tmp_path):
    counts = build_product_proxy(objects, tmp_path / "proxy", spec=SMALL)
    assert counts == {"gallery_instances": 6, "twins": 2, "known_queries": 12, "unknown_queries": 6}
    split = load_split(tmp_path / "proxy")
    assert split.layout == "gallery/queries" and len(split.gallery) == 6
    assert all(len(shots) == 1 for _, shots in split.gallery)  # one catalogue photo is the only shot
    assert split.known_queries == 12 and split.unknown_queries == 6
    manifest = json.loads((tmp_path / "proxy" / MANIFEST).read_text())
    enrolled = {name for name, _ in split.gallery}
    assert set(manifest["twins_of"]) <= enrolled and set(manifest["twins_of"].values()) <= enrolled
    unknown_sources = {p.name.rsplit("-", 1)[0] for p, truth in split.queries if truth is None}
    assert not unknown_sources & enrolled  # unknowns are objects never enrolled


def test_catalogue_photos_are_clean_and_twins_differ(objects, tmp_path):
    build_product_proxy(objects, tmp_path / "proxy", spec=SMALL)
    twins = json.loads((tmp_path / "proxy" / MANIFEST).read_text())["twins_of"]
    twin, original = next(iter(twins.items()))
    read = lambda name: cv2.imread(str(tmp_path / "proxy" / "gallery" / name / "catalogue.jpg")).astype(int)  # noqa: E731
    photo = read(original)
    assert photo.shape == (96, 96, 3) and photo[:4, :4].min() > 240  # white around the object
    assert np.abs(read(twin) - photo).mean() > 5  # another colour and print


def test_same_seed_same_bytes_other_seed_other_scenes(objects, tmp_path):
    build_product_proxy(objects, tmp_path / "a", spec=SMALL)
    build_product_proxy(objects, tmp_path / "b", spec=SMALL)
    assert files(tmp_path / "a") == files(tmp_path / "b")
    build_product_proxy(objects, tmp_path / "b", spec=ProxySpec(**{**SMALL.__dict__, "seed": 4}))  # replaces it
    other = files(tmp_path / "b")
    assert other != files(tmp_path / "a") and len(other) == len(files(tmp_path / "a"))


def test_backgrounds_come_from_a_photo_folder(objects, tmp_path, gallery_dir):
    counts = build_product_proxy(objects, tmp_path / "proxy", backgrounds=gallery_dir, spec=SMALL)
    assert counts["known_queries"] == 12
    scene = cv2.imread(str(next((tmp_path / "proxy" / "queries" / "_unknown").iterdir())))
    assert scene.shape == (120, 160, 3)


def test_refuses_what_it_cannot_build(objects, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InstrecError, match="refusing"):
        build_product_proxy(objects, tmp_path / "mine", spec=SMALL)
    assert (tmp_path / "mine" / "notes.txt").exists()
    with pytest.raises(InstrecError, match="objects"):
        build_product_proxy(objects, tmp_path / "x", spec=ProxySpec(gallery_objects=5, unknown_objects=2, twins=1))
    with pytest.raises(InstrecError, match="twins"):
        build_product_proxy(objects, tmp_path / "x", spec=ProxySpec(gallery_objects=2, unknown_objects=2, twins=3))


@pytest.mark.data
@pytest.mark.slow
def test_default_spec_on_coil_and_ukbench(tmp_path):
    counts = build_product_proxy(shared_data("coil100"), tmp_path / "proxy", backgrounds=shared_data("ukbench-dev"))
    assert counts == {"gallery_instances": 100, "twins": 30, "known_queries": 300, "unknown_queries": 100}
    assert load_split(tmp_path / "proxy").unknown_queries == 100
