"""A "catalogue photo -> shelf photo" test set, built offline and deterministically from a seed.

Shops enrol one clean catalogue photo per product and query with phone photos of packs on shelves,
among near-identical packs that differ only in colour and print, and they must answer "unknown" for
goods never enrolled. No such data is available offline, so this builds a proxy from object photos
on a dark background (COIL-100: the background gives a clean cut-out mask):

- gallery: per object, its front view cut out and centred on white (the catalogue photo), plus
  *confusable twins*: a recoloured copy with a different printed band, enrolled as another instance;
- queries: neighbouring views of each enrolled object (twins recoloured the same way), perspective
  warped, scaled and rotated into a cluttered scene (photos from a background folder such as
  UKBench, or procedural textures), partly occluded, under changed light;
- unknowns: objects never enrolled, composed into scenes the same way.

Written in the ``gallery/ queries/ queries/_unknown/`` layout that :func:`load_split` reads.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from instrec.errors import InstrecError
from instrec.evaluation.datasets import UNKNOWN_FOLDER
from instrec.images import iter_image_files

MANIFEST = "proxy.json"
NEIGHBOUR_VIEWS = (1, -1, 2, -2, 3, -3)  # query views: next to the catalogue view (COIL: +-15, +-30, +-45 degrees)


@dataclass(frozen=True)
class ProxySpec:
    seed: int = 0
    gallery_objects: int = 70  # real objects enrolled with one catalogue shot each
    twins: int = 30  # recoloured, re-printed copies of enrolled objects, enrolled as separate instances
    queries_per_object: int = 3
    unknown_objects: int = 25
    queries_per_unknown: int = 4
    scene_width: int = 480
    scene_height: int = 360
    catalogue_side: int = 256


@dataclass(frozen=True)
class _Twin:
    """What makes a twin a different product: another colour, another printed band."""

    hue_shift: int  # OpenCV hue units (0-179)
    band_top: float  # band position and height, as fractions of the object's height
    band_height: float
    band_colour: tuple[int, int, int]


def build_product_proxy(
    objects: str | Path, out: str | Path, *, backgrounds: str | Path | None = None, spec: ProxySpec = ProxySpec()
) -> dict[str, int]:
    """Write the proxy set under ``out`` (replaced if it holds a previous proxy); return its counts.

    ``objects``: one folder per object, photos on a dark background, views in name order (numbers
    compared as numbers). ``backgrounds``: a folder searched recursively for scene photos; without
    it, scenes are procedural textures.
    """
    out = Path(out)
    views = _object_views(Path(objects))
    if spec.gallery_objects + spec.unknown_objects > len(views):
        raise InstrecError(
            f"{objects}: {len(views)} objects, but the spec asks for "
            f"{spec.gallery_objects} enrolled + {spec.unknown_objects} unknown"
        )
    if spec.twins > spec.gallery_objects:
        raise InstrecError("there cannot be more twins than enrolled objects")
    scenery = _background_files(backgrounds)
    _prepare(out)
    rng = np.random.default_rng(spec.seed)
    names = sorted(views)
    order = [names[i] for i in rng.permutation(len(names))]
    enrolled, unknown = order[: spec.gallery_objects], order[spec.gallery_objects : spec.gallery_objects + spec.unknown_objects]
    twins = _choose_twins(enrolled, views, spec.twins, rng)
    instances = [(name, name, None) for name in enrolled] + [(f"{name}-twin", name, twin) for name, twin in twins.items()]
    for number, (instance_id, source, twin) in enumerate(instances):
        front, *_ = views[source]
        _write(out / "gallery" / instance_id / "catalogue.jpg", _catalogue_photo(_cut_out(front, twin), spec))
        for n in range(spec.queries_per_object):
            view = _neighbour(views[source], n)
            scene = _scene(_cut_out(view, twin), scenery, spec, np.random.default_rng([spec.seed, 1, number, n]))
            _write(out / "queries" / instance_id / f"scene-{n}.jpg", scene)
    for number, source in enumerate(unknown):
        for n in range(spec.queries_per_unknown):
            view = views[source][n % len(views[source])]
            scene = _scene(_cut_out(view, None), scenery, spec, np.random.default_rng([spec.seed, 2, number, n]))
            _write(out / "queries" / UNKNOWN_FOLDER / f"{source}-{n}.jpg", scene)
    counts = {
        "gallery_instances": len(instances),
        "twins": len(twins),
        "known_queries": len(instances) * spec.queries_per_object,
        "unknown_queries": len(unknown) * spec.queries_per_unknown,
    }
    manifest = {
        "spec": asdict(spec),
        "objects": str(objects),
        "backgrounds": str(backgrounds) if backgrounds else None,
        "counts": counts,
        "twins_of": {f"{name}-twin": name for name in twins},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return counts


def _natural_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def _object_views(root: Path) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise InstrecError(f"object folder {root} does not exist")
    views = {
        d.name: sorted(iter_image_files(d), key=_natural_key)
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }
    return {name: files for name, files in views.items() if files}


def _background_files(root: str | Path | None) -> list[Path]:
    if root is None:
        return []
    root = Path(root)
    if not root.is_dir():
        raise InstrecError(f"background folder {root} does not exist")
    files = sorted(p for d in [root, *sorted(q for q in root.rglob("*") if q.is_dir())] for p in iter_image_files(d))
    if not files:
        raise InstrecError(f"background folder {root} holds no images")
    return files


def _prepare(out: Path) -> None:
    """Start from an empty folder; only a previous proxy (it has a manifest) may be replaced."""
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise InstrecError(f"{out} is not empty and holds no {MANIFEST}: refusing to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InstrecError(f"cannot read image {path}")
    return image


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 88]):
        raise InstrecError(f"cannot write {path}")


def _saturation(path: Path) -> float:
    image = _read(path)
    mask = _mask(image) > 0
    return float(np.median(cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1][mask])) if mask.any() else 0.0


def _choose_twins(enrolled: list[str], views: dict[str, list[Path]], count: int, rng: np.random.Generator) -> dict[str, _Twin]:
    """Twins of the more colourful objects: recolouring a grey object would not change it."""
    by_colour = sorted(enrolled, key=lambda name: -_saturation(views[name][0]))
    pool = by_colour[: max(count, (3 * count) // 2)]
    chosen = sorted(rng.choice(len(pool), size=count, replace=False).tolist()) if count else []
    return {
        pool[i]: _Twin(
            hue_shift=int(rng.integers(45, 135)),
            band_top=float(rng.uniform(0.2, 0.6)),
            band_height=float(rng.uniform(0.12, 0.25)),
            band_colour=_rgb(rng.integers(0, 256, 3)),
        )
        for i in chosen
    }


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in values)
    return r, g, b


def _mask(image: np.ndarray) -> np.ndarray:
    """Object pixels of a photo on a dark background: bright-enough pixels, holes filled."""
    bright = (cv2.GaussianBlur(image, (5, 5), 0).max(axis=2) > 28).astype(np.uint8) * 255
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    mask = np.zeros(image.shape[:2], np.uint8)
    large = [c for c in contours if cv2.contourArea(c) >= 0.002 * mask.size]
    cv2.drawContours(mask, large, -1, 255, thickness=cv2.FILLED)
    return cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2)  # drop the dark rim around the object


def _cut_out(path: Path, twin: _Twin | None) -> tuple[np.ndarray, np.ndarray]:
    """(object pixels, mask) cropped to the object; a twin's colour and band applied."""
    image = _read(path)
    mask = _mask(image)
    if not mask.any():
        raise InstrecError(f"{path}: no object found on a dark background")
    x, y, w, h = cv2.boundingRect(mask)
    image, mask = image[y : y + h, x : x + w].copy(), mask[y : y + h, x : x + w]
    if twin is not None:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + twin.hue_shift) % 180
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        top, height = int(twin.band_top * h), max(2, int(twin.band_height * h))
        band = image[top : top + height]
        inside = mask[top : top + height] > 0
        band[inside] = (0.35 * band[inside] + 0.65 * np.array(twin.band_colour)).astype(np.uint8)
    return image, mask


def _catalogue_photo(cut: tuple[np.ndarray, np.ndarray], spec: ProxySpec) -> np.ndarray:
    """The object centred on white, filling 80% of a square: the clean shot a catalogue holds."""
    image, mask = cut
    side = spec.catalogue_side
    scale = 0.8 * side / max(image.shape[:2])
    image, mask = (cv2.resize(a, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for a in (image, mask))
    canvas = np.full((side, side, 3), 255, np.uint8)
    h, w = mask.shape
    y, x = (side - h) // 2, (side - w) // 2
    _blend(canvas, image, mask, x, y)
    return canvas


def _blend(canvas: np.ndarray, image: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Paste ``image`` through ``mask`` (soft-edged) at (x, y), clipped to the canvas."""
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    alpha = cv2.GaussianBlur(mask, (3, 3), 0)[y0 - y : y1 - y, x0 - x : x1 - x, None].astype(np.float32) / 255
    region = canvas[y0:y1, x0:x1]
    region[:] = (alpha * image[y0 - y : y1 - y, x0 - x : x1 - x] + (1 - alpha) * region).astype(np.uint8)


def _neighbour(views: list[Path], n: int) -> Path:
    return views[NEIGHBOUR_VIEWS[n % len(NEIGHBOUR_VIEWS)] % len(views)]


def _scene(cut: tuple[np.ndarray, np.ndarray], scenery: list[Path], spec: ProxySpec, rng: np.random.Generator) -> np.ndarray:
    """The object warped into clutter, maybe partly hidden, under another light."""
    width, height = spec.scene_width, spec.scene_height
    scene = _backdrop(scenery, width, height, rng)
    image, mask = _warp(cut, float(rng.uniform(0.35, 0.7)) * min(width, height), rng)
    h, w = mask.shape
    x, y = int(rng.integers(0, max(1, width - w))), int(rng.integers(0, max(1, height - h)))
    _blend(scene, image, mask, x, y)
    if rng.random() < 0.6:
        _occlude(scene, (x, y, w, h), scenery, rng)
    return _relight(scene, rng)


def _backdrop(scenery: list[Path], width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A photo (random crop) with a few other photos' patches on it, or a procedural texture."""
    if not scenery:
        return _texture(width, height, rng)
    scene = _cover(_read(scenery[int(rng.integers(len(scenery)))]), width, height, rng)
    for _ in range(int(rng.integers(2, 5))):
        patch = _read(scenery[int(rng.integers(len(scenery)))])
        side = int(rng.uniform(0.2, 0.4) * min(width, height))
        patch = cv2.resize(patch, (side, int(side * rng.uniform(0.7, 1.5))), interpolation=cv2.INTER_AREA)
        ph, pw = patch.shape[:2]
        x, y = int(rng.integers(0, max(1, width - pw))), int(rng.integers(0, max(1, height - ph)))
        _blend(scene, patch, np.full((ph, pw), 255, np.uint8), x, y)
    return scene


def _cover(image: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    scale = max(width / image.shape[1], height / image.shape[0]) * rng.uniform(1.0, 1.5)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    y = int(rng.integers(0, image.shape[0] - height + 1))
    x = int(rng.integers(0, image.shape[1] - width + 1))
    return image[y : y + height, x : x + width].copy()


def _texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency colour noise with shelf-like boxes: clutter without any photo."""
    noise = rng.integers(0, 256, (max(2, height // 24), max(2, width // 24), 3)).astype(np.uint8)
    scene = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(4, 9))):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 10, width // 3)), int(rng.integers(height // 10, height // 3))
        cv2.rectangle(scene, (x, y), (x + w, y + h), tuple(int(c) for c in rng.integers(0, 256, 3)), cv2.FILLED)
    return scene


def _warp(cut: tuple[np.ndarray, np.ndarray], long_side: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scale to ``long_side``, rotate a little and tilt (random perspective), cropped to the result."""
    image, mask = cut
    h, w = mask.shape
    scale = long_side / max(h, w)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    jitter = rng.uniform(-0.12, 0.12, (4, 2)) * [w, h]
    angle = np.deg2rad(rng.uniform(-15, 15))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = ((corners + jitter - [w / 2, h / 2]) @ rotation.T) * scale
    moved -= moved.min(axis=0)
    size = (int(np.ceil(moved[:, 0].max())) + 1, int(np.ceil(moved[:, 1].max())) + 1)
    matrix = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    return (
        cv2.warpPerspective(image, matrix, size, flags=cv2.INTER_LINEAR),
        cv2.warpPerspective(mask, matrix, size, flags=cv2.INTER_LINEAR),
    )


def _occlude(scene: np.ndarray, box: tuple[int, int, int, int], scenery: list[Path], rng: np.random.Generator) -> None:
    """Hide 10-35% of the object behind a neighbouring pack (a photo patch) or a flat tag/hand."""
    x, y, w, h = box
    share = rng.uniform(0.10, 0.35)
    if rng.random() < 0.5:  # a vertical slice from the left or right
        ow, oh = max(1, int(share * w)), h
        ox = x if rng.random() < 0.5 else x + w - ow
        oy = y
    else:  # a horizontal slice from the top or bottom
        ow, oh = w, max(1, int(share * h))
        ox, oy = x, y if rng.random() < 0.5 else y + h - oh
    if scenery:
        patch = cv2.resize(_read(scenery[int(rng.integers(len(scenery)))]), (ow, oh), interpolation=cv2.INTER_AREA)
    else:
        patch = np.full((oh, ow, 3), rng.integers(0, 256, 3), np.uint8)
    _blend(scene, patch, np.full((oh, ow), 255, np.uint8), ox, oy)


def _relight(scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, gamma, a mild colour cast and a light gradient across the scene."""
    height, width = scene.shape[:2]
    light = scene.astype(np.float32) / 255
    light = light ** rng.uniform(0.7, 1.4)
    light *= rng.uniform(0.6, 1.25) * rng.uniform(0.92, 1.08, 3)
    direction = rng.uniform(-1, 1, 2)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (direction[0] * (xs / width - 0.5) + direction[1] * (ys / height - 0.5)) * rng.uniform(0.0, 0.5)
    light *= (1 + ramp)[..., None]
    return (np.clip(light, 0, 1) * 255).astype(np.uint8)
