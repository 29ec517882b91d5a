"""Enrolment: shots in, instances out.

Images are loaded, embedded and given their keypoints, then written: originals first, then the
catalog, then the in-RAM indexes are brought up to date. A bulk enrolment (many instances: a
folder of folders, or any iterable of them) works ahead on every core (:func:`instrec.ahead.ahead`)
and writes in order, on the calling thread.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from instrec.ahead import ahead
from instrec.catalog import ImageRecord, NewImage
from instrec.config import Config, usable_cores
from instrec.errors import ImageError, InstrecError, TooManyImagesError, UnknownInstanceError, UnusableShotError
from instrec.images import LoadedImage, iter_image_files, load_images
from instrec.library import Library
from instrec.rerank import LocalVerifier
from instrec.results import EnrollResult, FolderReport

_Prepared = tuple[dict[str, ImageRecord], list[NewImage], list[ImageError]]  # Enrolment._prepare
# One instance ready to write: its id, its unreadable files, its images, and what _prepare made of
# them (or why it refused them all; None: nothing to write).
Prepared = tuple[str, list[ImageError], list[LoadedImage], _Prepared | Exception | None]
SYNC_EVERY = 256  # instances written between updates of the in-RAM indexes during a bulk enrolment


class Enrolment:
    """What :class:`instrec.recognizer.Recognizer`'s ``enroll*`` methods do, on its library and embedder."""

    def __init__(self, config: Config, library: Library, embedder: Any):
        self.config, self.library, self.embedder = config, library, embedder

    def enroll(
        self,
        images: Sequence[Any],
        *,
        instance_id: str | None = None,
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        new: bool = False,
        existing: bool = False,
        skip_bad: bool = False,
    ) -> EnrollResult:
        if existing:
            if instance_id is None or new:
                raise ValueError("existing=True needs an instance_id and excludes new=True")
            self.library.catalog.get_instance(instance_id)  # 404 before any work
        instance_id = instance_id or uuid.uuid4().hex[:12]
        loaded, errors = load_images(images, self.config.limits, skip_bad=skip_bad)
        if not loaded:
            if errors:
                raise errors[0]
            raise InstrecError(f"{'adding images' if existing else 'enrolment'} needs at least one image")
        return self._write(
            instance_id, loaded, errors, label=label, metadata=metadata, new=new, create=not existing, skip_bad=skip_bad
        )

    def folder(self, root: str | Path, progress: Callable[[int, int, str], None] | None = None) -> FolderReport:
        root = Path(root)
        if not root.is_dir():
            raise InstrecError(f"{root} is not a folder")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return self.many(((folder.name, iter_image_files(folder)) for folder in folders), len(folders), progress)

    def many(
        self,
        entries: Iterable[tuple[str, Iterable[Any]]],
        total: int | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> FolderReport:
        def prepare(entry: tuple[str, Iterable[Any]]) -> Prepared:
            loaded, errors = load_images(list(entry[1]), self.config.limits, skip_bad=True)
            try:
                return entry[0], errors, loaded, self._prepare(entry[0], loaded) if loaded else None
            except TooManyImagesError as error:
                return entry[0], errors, loaded, error

        # Entries are read, embedded and given their keypoints ahead, on worker threads, while this one
        # writes them in order. dlib's detector is not known to be thread-safe: a faces library has one.
        workers = 1 if self.config.embeds_faces else usable_cores()
        return self.write_all((future.result() for _, future in ahead(prepare, entries, workers)), total, progress)

    def write_all(
        self, prepared: Iterable[Prepared], total: int | None = None, progress: Callable[[int, int, str], None] | None = None
    ) -> FolderReport:
        """Write instances prepared elsewhere (threads here, or workers of a cluster), one after the other."""
        started = time.perf_counter()
        report = FolderReport()
        for number, (instance_id, errors, loaded, shots) in enumerate(prepared, 1):
            report.errors.extend(errors)
            try:
                if isinstance(shots, Exception):
                    raise shots
                result = self._write(instance_id, loaded, [], prepared=shots) if shots else None
            except (TooManyImagesError, UnusableShotError) as error:  # nothing of the entry could be enrolled
                report.errors.append(error)
                result = None
            if result is not None:
                report.instances += 1
                report.images_added += len(result.added)
                report.duplicates += len(result.duplicates)
                report.errors.extend(result.errors)
            if number % SYNC_EVERY == 0:
                self.library.sync()
            if progress:
                progress(number, total or 0, instance_id)
        self.library.sync()
        self.library.save()
        report.seconds = time.perf_counter() - started
        return report

    def check_room(self, instance_id: str, known: dict[str, ImageRecord], loaded: list[LoadedImage]) -> None:
        """Raise :class:`TooManyImagesError` if ``loaded`` would take the instance past limits.max_images_per_instance."""
        total = len(known) + len({img.sha256 for img in loaded if img.sha256 not in known})
        if total > (most := self.config.limits.max_images_per_instance):
            raise TooManyImagesError(instance_id, f"{total} images; at most {most} per instance (limits.max_images_per_instance)")

    def known(self, instance_id: str) -> dict[str, ImageRecord]:
        """The instance's images enrolled already, by content hash (none for an unknown id)."""
        try:
            return {r.sha256: r for r in self.library.catalog.images_of(instance_id)}
        except UnknownInstanceError:
            return {}

    def _write(
        self,
        instance_id: str,
        loaded: list[LoadedImage],
        errors: list[ImageError],
        *,
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        new: bool = False,
        create: bool = True,
        skip_bad: bool = True,
        prepared: _Prepared | None = None,
    ) -> EnrollResult:
        """Write what :meth:`_prepare` made of ``loaded`` (made here unless given, and then the
        in-RAM indexes are brought up to date too; a bulk caller syncs them once in a while)."""
        library = self.library
        known, new_images, refused = prepared or self._prepare(instance_id, loaded)
        if refused and (not skip_bad or not (new_images or known)):  # nothing to enrol is refused, as in enroll()
            raise refused[0]
        kept = {image.sha256 for image in new_images}
        keep = not self.config.embeds_faces or self.config.faces.keep_originals  # faces: a privacy setting
        for image in {img.sha256: img for img in loaded if img.sha256 in kept}.values() if keep else []:
            library.blobs.put(image.sha256, image.encoded)  # blobs first: a crash leaves an orphan file, never a dangling row
        instance, added, duplicates = library.catalog.add_images(
            instance_id, new_images, library.descriptor, label=label, metadata=metadata, create=create, must_create=new
        )
        duplicates += [known[img.sha256] for img in loaded if img.sha256 in known]
        if prepared is None:
            library.sync()
        return EnrollResult(instance, added, duplicates, errors + refused)

    def _prepare(self, instance_id: str, loaded: list[LoadedImage]) -> _Prepared:
        """The instance's images enrolled already (by content hash), and the others embedded or refused."""
        known = self.known(instance_id)
        self.check_room(instance_id, known, loaded)
        fresh = [img for img in loaded if img.sha256 not in known]
        return (known, *embed_shots(self.embedder, self.library.verifier, fresh))


def embed_shots(
    embedder: Any, verifier: LocalVerifier | None, images: Sequence[LoadedImage]
) -> tuple[list[NewImage], list[ImageError]]:
    """The images to add (embedded, with their keypoints when ``verifier``), and the ones the pipeline refuses."""
    if not images:
        return [], []
    vectors, problems = embedder.embed_shots([img.pixels for img in images])
    refused: list[ImageError] = [UnusableShotError(img.source, why) for img, why in zip(images, problems) if why]
    added = [
        NewImage(
            img.sha256,
            img.source,
            img.width,
            img.height,
            vectors[number : number + 1],
            local_features=verifier.extract(img.pixels, img.alpha).pack() if verifier else None,
        )
        for number, img in enumerate(images)
        if problems[number] is None
    ]
    return added, refused
