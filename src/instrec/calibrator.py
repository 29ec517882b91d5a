"""The gallery's open-set decision: measured on the gallery, stored in its catalog, read back, and
re-measured when the gallery has changed materially.

Scores differ per scoring pipeline (``Config.scoring_key``), so each pipeline keeps its own
calibration in the catalog's meta table, and the shipped prior applies only to the pipeline it was
fitted under. Until a gallery is measured, the prior (or, for other pipelines, a guess) decides.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from instrec.config import Config
from instrec.decision import Calibration, InstanceScore, Prior, calibrate, default_calibration
from instrec.decision.gallery import Shot, measure
from instrec.decision.tail import tail_threshold
from instrec.errors import ImageError, InstrecError
from instrec.images import load_image
from instrec.library import Library

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 60  # enrolled images probed per calibration (two probes each), whatever the gallery's size
# The gallery has changed materially when this share of its images (at least one) came or went
# since it was calibrated: then start_if_stale starts.
STALE_SHARE = 0.2
NEAR_DUPLICATE = 0.97  # cosine between two instances' images above which they are one picture
NEAR_DUPLICATE_NEIGHBOURS = 5
SAME_PICTURE = 0.9  # a shipped scene photo this close to a gallery vector was enrolled: no stranger

Ranking = Callable[[list[Image.Image]], list[list[InstanceScore]]]
Lowering = Callable[[list[InstanceScore]], list[InstanceScore]]


class _Closing(Exception):
    """Raised inside a background calibration to end it early."""


class GalleryCalibrator:
    """``rank`` ranks photos' instances before the decision, ``lower`` turns those scores into the
    ones recognition thresholds, ``best_scores`` gives the best match's score of each of a batch of
    photos (for negatives), ``embed`` embeds photos."""

    def __init__(
        self,
        config: Config,
        library: Library,
        rank: Ranking,
        lower: Lowering,
        best_scores: Callable[[Sequence[Any]], list[float]],
        embed: Callable[[list[Image.Image]], np.ndarray],
    ):
        self.config = config
        self.library = library
        self._rank, self._lower, self._best_scores, self._embed = rank, lower, best_scores, embed
        key = config.scoring_key()
        self._meta = f"calibration:{key}"
        self.prior = Prior.shipped(key)
        self._stored: tuple[str | None, Calibration | None] = (None, None)
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None
        self._closing = threading.Event()

    def current(self) -> Calibration:
        """The stored calibration of this pipeline (re-read when another process stored a new one),
        else the prior's."""
        stored = self.library.catalog.get_meta(self._meta)
        if stored != self._stored[0]:
            self._stored = (stored, Calibration.from_json(stored) if stored else None)
        decision, target_far = self.config.tuning.decision, self.config.decision.target_far
        return self._stored[1] or default_calibration(self.prior, decision.competitor_weight, target_far, self._floor(target_far))

    def measure(
        self,
        target_far: float | None = None,
        *,
        seed: int = 0,
        negatives: Sequence[Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Calibration:
        """Measure the open-set threshold on this gallery and store it (blended with the prior).

        Up to ``CALIBRATION_IMAGES`` enrolled images, whatever the gallery's size, are turned into
        query-like probes (:mod:`instrec.decision.probes`): a probe's score for its own instance is
        genuine, its best other instance's an impostor score, and so is the best score of each
        shipped stranger photo. The threshold lets through ``target_far`` of impostors.

        ``negatives`` (photos of things that are *not* enrolled, taken like real queries, e.g.
        shelf photos without the catalogue's products) replace the synthetic impostors: the best
        estimate of what strangers score, when a user has them.
        """
        target_far = self.config.decision.target_far if target_far is None else target_far
        if not 0 < target_far < 1:
            raise InstrecError("target false-accept rate must be between 0 and 1")
        library = self.library
        library.sync()
        owners = library.catalog.image_owners()
        if not owners:
            raise InstrecError("calibration needs at least one enrolled instance")
        rng = np.random.default_rng(seed)
        sample = sorted(rng.choice(sorted(owners), size=min(CALIBRATION_IMAGES, len(owners)), replace=False).tolist())
        twins, duplicates = self._twins(owners, sample)
        shots = []
        for image in sample:
            try:
                pixels = load_image(library.blobs.get(owners[image][1]), self.config.limits).pixels
            except (ImageError, OSError) as error:  # its original removed meanwhile, or lost
                log.warning("image %d is not probed: %s", image, error)
                continue
            shots.append(Shot(owners[image][0], pixels, seed * 1_000_003 + image))
        scores = measure(self._rank, self._lower, shots, twins, self._holds, progress, with_strangers=not negatives)
        source = f"probes of {len(shots)} images, {scores.strangers} stranger photos"
        if negatives:
            scores.impostor = [
                score for start in range(0, len(negatives), 16) for score in self._best_scores(negatives[start : start + 16])
            ]
            source = f"probes of {len(shots)} images, {len(scores.impostor)} negatives"
        if not scores.impostor:
            raise InstrecError("calibration found no impostor scores: enrol a second instance or pass negatives")
        result = calibrate(
            np.asarray(scores.genuine),
            np.asarray(scores.impostor),
            target_far,
            source,
            self.prior,
            self._floor(target_far),
            images=len(owners),
            duplicates=duplicates,
        )
        library.catalog.set_meta(self._meta, result.to_json())
        return result

    def _floor(self, target_far: float) -> float | None:
        """The profile's threshold for this gallery's size, before and under any measurement (None: none)."""
        tail = self.config.tuning.decision.stranger_tail
        if tail is None:
            return None
        return tail_threshold(tail.scale, tail.dim, target_far, self.library.index_info()["vectors"])

    def stale(self) -> bool:
        """Whether the gallery has changed materially since it was calibrated (or never was)."""
        images = self.library.catalog.stats()["images"]
        calibration = self.current()
        if calibration.impostor == 0:  # the prior or a guess: stale as soon as there is a gallery
            return images > 0
        return abs(images - calibration.images) >= max(1.0, STALE_SHARE * calibration.images)

    def start_if_stale(self) -> bool:
        """Start re-calibrating on a side thread if the gallery changed materially and no
        re-calibration is running; True if one was started. Never blocks recognition: the old
        threshold holds until the new one is stored."""
        with self._lock:
            if self._closing.is_set() or (self._running is not None and self._running.is_alive()):
                return False
            if not self.stale():
                return False
            self._running = threading.Thread(target=self._recalibrate, name="instrec-calibrate", daemon=True)
            self._running.start()
            return True

    def close(self) -> None:
        """Stop a background re-calibration at its next batch of probes and wait for it: the library
        it reads is closed next, and SQLite must not be read through a closed connection."""
        with self._lock:
            self._closing.set()
            running = self._running
        if running is not None:
            running.join()

    def _recalibrate(self) -> None:
        def stop_if_closing(done: int, total: int) -> None:
            if self._closing.is_set():
                raise _Closing

        try:
            result = self.measure(progress=stop_if_closing)
            log.info("re-calibrated: %s", result.describe())
        except _Closing:
            log.info("background calibration stopped: the recognizer is closing")
        except Exception as error:  # a side thread has no caller to raise to
            log.warning("background calibration failed: %s", error)

    def _twins(self, owners: dict[int, tuple[int, str]], sample: list[int]) -> tuple[dict[int, set[int]], int]:
        """Instances that hold a duplicate of another's image, by content hash or a near-identical
        vector (the sampled images' nearest other-instance vectors): each instance's twins, and how
        many instances have one. A twin's score for a probe is not a stranger's."""
        by_hash: dict[str, set[int]] = {}
        for instance, sha in owners.values():
            by_hash.setdefault(sha, set()).add(instance)
        pairs = [group for group in by_hash.values() if len(group) > 1]
        library = self.library
        ids, instances, vectors = library.catalog.vectors.by_pk(
            [v for vs in library.catalog.vectors.of_images(sample).values() for v in vs[:1]], library.dim
        )
        if len(vectors):
            hits = library.search(vectors, NEAR_DUPLICATE_NEIGHBOURS)
            for own, hit in zip(instances.tolist(), hits):
                near = {
                    int(i)
                    for i, score in zip(hit.instance_pks.tolist(), hit.scores.tolist())
                    if score >= NEAR_DUPLICATE and i != own and i >= 0
                }
                if near:
                    pairs.append(near | {own})
        twins: dict[int, set[int]] = {}
        for group in pairs:
            for instance in group:
                twins.setdefault(instance, set()).update(group - {instance})
        if twins:
            log.warning("%d instances share a picture with another: kept out of each other's stranger scores", len(twins))
        return twins, len(twins)

    def _holds(self, photo: Image.Image) -> bool:
        """Whether the gallery holds this very picture (resized or recompressed): a vector that close."""
        hits = self.library.search(self._embed([photo]), 1)[0]
        return bool(len(hits.scores)) and float(hits.scores[0]) >= SAME_PICTURE
