"""The engine's public face: enrol a few shots per instance, recognise, or answer "unknown".

The CLI, the REST service and user code all call this class; it glues the stages together
(images -> embedding -> library/index -> local verification -> decision) and owns no algorithm of
its own.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PIL import Image

from instrec.calibrator import GalleryCalibrator
from instrec.config import Config, usable_cores
from instrec.enrolment import Enrolment
from instrec.decision import Calibration, InstanceScore, against_competitors
from instrec.gallery_view import GalleryView
from instrec.images import LoadedImage, load_image
from instrec.index import set_threads as set_search_threads
from instrec.library import Library, collection_home, collection_schema, complete_local_features
from instrec.rerank import LocalVerifier
from instrec.query import RankedPhotos, image_hits, rank_faces, rank_photos
from instrec.results import Box, EnrollResult, FolderReport, ImageHit, Match, Recognition

log = logging.getLogger(__name__)

ImageInput = Any  # path, bytes, PIL image or numpy array (see instrec.images.load_image)


class Recognizer:
    """Open (or create) the library of ``config.collection`` in ``config.home``.
    Thread-safe; share one per process, and one ``embedder`` among the collections of a home."""

    def __init__(self, config: Config | None = None, *, embedder: Any = None):
        self.config = config or Config.load()
        self._embedder = embedder
        self._library: Library | None = None
        self._init_lock = threading.Lock()
        self._gallery_calibrator: GalleryCalibrator | None = None
        self._side_work: ThreadPoolExecutor | None = None

    @classmethod
    def open(cls, home: str | Path | None = None, *, collection: str | None = None, **overrides: Any) -> "Recognizer":
        """``Recognizer.open("lib", collection="shoes", **{"index.backend": "flat"})``."""
        return cls(Config.load(home=home, overrides={**overrides, **({"collection": collection} if collection else {})}))

    @property
    def _home(self) -> Path:
        """The folder of this recognizer's library: the home, or its collection's folder in it."""
        return collection_home(self.config.home, self.config.collection)

    # -- lazily built parts --------------------------------------------------------------------
    @property
    def embedder(self):
        if self._embedder is None:
            with self._init_lock:
                if self._embedder is None:
                    from instrec.embedding.factory import create_embedder

                    self._embedder = create_embedder(self.config)
        return self._embedder

    @property
    def library(self) -> Library:
        if self._library is None:
            embedder = self.embedder
            with self._init_lock:
                if self._library is None:
                    set_search_threads(self.config.runtime.threads)  # the CLI, the service and user code alike
                    self._library = Library(
                        self._home,
                        dim=embedder.dim,
                        descriptor=embedder.digest,
                        descriptor_info=self.config.descriptor_key(),
                        index=self.config.index,
                        local=self._verifier() if self.config.local_features else None,
                        catalog_url=self.config.catalog.url,
                        catalog_schema=collection_schema(self.config.collection) if self.config.catalog.url else None,
                    )
        return self._library

    def _verifier(self) -> LocalVerifier:
        return LocalVerifier(self.config.tuning.rerank, self.config.rerank.vocabulary)

    @property
    def _enrolment(self) -> Enrolment:
        return Enrolment(self.config, self.library, self.embedder)

    @property
    def gallery(self) -> GalleryView:
        """What is enrolled: instances, their images and stored originals (and label/metadata edits)."""
        return GalleryView(lambda: self.library)

    def _in_parallel(self, work: Callable[[], Any]) -> Callable[[], Any]:
        """A function giving ``work``'s result: ``work`` is started now on a side thread when the network
        leaves a core spare (0 < runtime.threads < cores), else it runs when its result is asked for.

        SIFT (OpenCV) and ONNX Runtime both release the GIL, so keypoints found while the photo is
        embedded come for free only where the network leaves a core idle; with the network on every
        core they slow it down (benchmarks/bench_recognize_latency.py measures both).
        """
        if not 0 < self.config.runtime.threads < usable_cores():
            return work
        if self._side_work is None:
            with self._init_lock:
                if self._side_work is None:  # one thread per core: concurrent queries each get one
                    self._side_work = ThreadPoolExecutor(usable_cores(), thread_name_prefix="instrec-side")
        return self._side_work.submit(work).result

    def close(self) -> None:
        with self._init_lock:
            side_work, self._side_work = self._side_work, None
        if side_work is not None:
            side_work.shutdown(wait=True)
        if self._gallery_calibrator is not None:
            self._gallery_calibrator.close()
        if self._library is not None:
            self._library.close()

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- enrolment -----------------------------------------------------------------------------
    def enroll(
        self,
        images: Sequence[ImageInput],
        *,
        instance_id: str | None = None,
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        new: bool = False,
        existing: bool = False,
        skip_bad: bool = False,
    ) -> EnrollResult:
        """Enrol images of one instance: created if needed; ``new=True`` refuses an existing id,
        ``existing=True`` an unknown one (:class:`UnknownInstanceError` before any work, and an
        instance removed meanwhile is never re-created).

        Bad images raise :class:`ImageError` unless ``skip_bad``, in which case they are reported in
        ``result.errors`` and the good ones are enrolled; so do images the pipeline cannot enrol
        (:class:`UnusableShotError`: the faces profile's photos without a face, or with several).
        Images already enrolled for this instance (same content hash) are reported as duplicates
        and not added again.
        """
        return self._enrolment.enroll(
            images, instance_id=instance_id, label=label, metadata=metadata, new=new, existing=existing, skip_bad=skip_bad
        )

    def enroll_folder(
        self,
        root: str | Path,
        *,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> FolderReport:
        """Enrol ``root/<instance id>/<images>``. Re-running adds only what is new (resumable). Bad files,
        and folders with more images than ``limits.max_images_per_instance``, are reported in the
        returned report's ``errors`` and skipped."""
        return self._enrolment.folder(root, progress)

    def enroll_many(
        self,
        entries: Iterable[tuple[str, Iterable[ImageInput]]],
        *,
        total: int | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> FolderReport:
        """Enrol many instances, ``(instance id, its images)`` each, as :meth:`enroll_folder` does a folder:
        worked ahead on every core, bad images and over-full instances reported and skipped. ``entries``
        may be a generator (read as the work goes, a bounded number ahead); ``total`` is for ``progress``."""
        return self._enrolment.many(entries, total, progress)

    def extract_missing_local_features(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Give images enrolled while re-ranking was off their local features, and images enrolled
        before colour signatures existed their colour; returns how many were completed
        (:func:`instrec.library.complete_local_features`)."""
        return complete_local_features(self.library, self.config.limits, progress)

    def reindex(self) -> dict[str, Any]:
        """Rebuild the vector index (any ``index.backend``) and the local-feature index from the catalog."""
        return self.library.reindex()

    # -- management (reads: :attr:`gallery`) ---------------------------------------------------
    def remove(self, instance_id: str) -> None:
        """Remove an instance; in a faces library nothing of the person stays in any file of the home."""
        self.library.remove_instance(instance_id, wipe=self.config.embeds_faces)

    def remove_image(self, image_id: int) -> None:
        self.library.remove_image(image_id, wipe=self.config.embeds_faces)

    def stats(self) -> dict[str, Any]:
        library, calibration = self.library, self.calibration
        return {
            **library.catalog.stats(),
            "index": library.index_info(),
            "descriptor": {"id": library.descriptor, **self.config.descriptor_key()},
            "dim": library.dim,
            "threshold": self.threshold,
            "calibration": calibration.source,
            "calibration_summary": calibration.describe(),
            "calibration_stale": self._calibrator.stale(),
            "home": str(self._home),
            "collection": self.config.collection,
        }

    # -- recognition ---------------------------------------------------------------------------
    @property
    def calibration(self) -> Calibration:
        return self._calibrator.current()

    @property
    def threshold(self) -> float:
        return self.config.decision.threshold if self.config.decision.threshold is not None else self.calibration.threshold

    def recognize(self, image: ImageInput, k: int | None = None, *, with_images: bool = False) -> Recognition:
        if self.config.embeds_faces:  # the photo's largest face (recognize_faces)
            return self.recognize_faces(image, k, with_images=with_images)[0]
        return self.recognize_many([image], k, with_images=with_images)[0]

    def recognize_faces(self, image: ImageInput, k: int | None = None, *, with_images: bool = False) -> list[Recognition]:
        """A faces library: one recognition per face, largest first, each with its box (or one ``no_face``)."""
        loaded, library = load_image(image, self.config.limits), self.library
        boxes, ranked = rank_faces(library, self.embedder, loaded, self.config.tuning.decision.shortlist, self._in_parallel)
        if not boxes:
            timing = ranked.per_image_ms
            return [Recognition(True, [], self.threshold, {**timing, "total": sum(timing.values())}, no_face=True)]
        hits = [image_hits(library, h, v) if with_images else [] for h, v in zip(ranked.hits, ranked.verified)]
        answers = [self._decide(r, k, ranked.per_image_ms, i, loaded) for r, i in zip(ranked.instances, hits)]
        return [replace(answer, box=box) for answer, box in zip(answers, boxes)]

    def recognize_many(
        self, images: Sequence[ImageInput], k: int | None = None, *, with_images: bool = False
    ) -> list[Recognition]:
        """Raises :class:`ImageError` for a bad image (nothing is half-done: recognition writes nothing)."""
        t0 = time.perf_counter()
        loaded = [load_image(image, self.config.limits) for image in images]
        load_ms = (time.perf_counter() - t0) * 1e3 / len(images)
        ranked = self._ranked([img.pixels for img in loaded])
        per_image = {"load": load_ms, **ranked.per_image_ms}
        return [
            self._decide(r, k, per_image, image_hits(self.library, h, v) if with_images else [], img)
            for r, h, v, img in zip(ranked.instances, ranked.hits, ranked.verified, loaded)
        ]

    def _ranked(self, pixels: list[Image.Image]) -> RankedPhotos:
        return rank_photos(self.library, self.embedder.embed, pixels, self.config.tuning.decision.shortlist, self._in_parallel)

    def _against_competitors(self, ranked: list[InstanceScore]) -> list[InstanceScore]:
        """Scores as recognition returns them and calibration measures them (``tuning.decision.competitor*``)."""
        decision = self.config.tuning.decision
        return against_competitors(ranked, decision.competitor_weight, decision.competitors)

    def _decide(
        self, ranked: list[InstanceScore], k: int | None, timing: dict[str, float], image_hits: list[ImageHit], photo: LoadedImage
    ) -> Recognition:
        top = self._against_competitors(ranked)[: k or self.config.decision.top_k]
        instances = self.library.catalog.instances_by_pk([s.instance_pk for s in top])
        images = self.library.catalog.vectors.image_of([s.vector_id for s in top])
        calibration, threshold = self.calibration, self.threshold
        # Ranked on the photo's working-size pixels: boxes are given in the photo as the user sent it.
        size = (photo.width, photo.height)
        scale = (photo.width / photo.pixels.width, photo.height / photo.pixels.height)
        matches = [
            Match(
                inst.id,
                inst.label,
                s.score,
                calibration.confidence(s.score),
                inst.metadata,
                images.get(s.vector_id, -1),
                s.inliers,
                None if s.box is None else Box.around(s.box, scale, size),
            )
            for s in top
            if (inst := instances.get(s.instance_pk)) is not None
        ]
        unknown = not matches or matches[0].score < threshold
        return Recognition(unknown, matches, threshold, {**timing, "total": sum(timing.values())}, image_hits)

    # -- calibration ---------------------------------------------------------------------------
    @property
    def _calibrator(self) -> GalleryCalibrator:
        if self._gallery_calibrator is None:
            library, embed = self.library, self.embedder.embed  # built before the lock: they take it themselves
            with self._init_lock:
                if self._gallery_calibrator is None:
                    self._gallery_calibrator = GalleryCalibrator(
                        self.config,
                        library,
                        lambda photos: self._ranked(photos).instances,
                        self._against_competitors,
                        lambda photos: [r.matches[0].score for r in self.recognize_many(photos, k=1) if r.matches],
                        embed,
                    )
        return self._gallery_calibrator

    def calibrate(
        self,
        target_far: float | None = None,
        *,
        seed: int = 0,
        negatives: Sequence[ImageInput] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Calibration:
        """Measure the open-set threshold on this gallery and store it (:meth:`GalleryCalibrator.measure`);
        ``negatives``: photos of things not enrolled, taken like real queries, the best impostors."""
        return self._calibrator.measure(target_far, seed=seed, negatives=negatives, progress=progress)

    def recalibrate_in_background(self) -> bool:
        """Re-calibrate on a side thread if the gallery changed materially and none is running;
        True if one was started. Never blocks recognition: the old threshold holds meanwhile.
        Whether the gallery has changed materially (or was never calibrated) is
        ``stats()["calibration_stale"]``."""
        return self._calibrator.start_if_stale()
