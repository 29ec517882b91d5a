"""Folder enrolment on Ray workers: ``instrec enroll DIR --ray [--ray-address ADDRESS]``.

A Ray Data actor pool decodes, embeds and extracts keypoints; each actor builds the model once.
The driver, this process, writes through the catalog as a local folder enrolment does
(:meth:`instrec.enrolment.Enrolment.write_all`), so the catalog keeps one writer and its journal
semantics. Files whose content the instance holds already are never sent, which makes a re-run
add only what is new: resumable, idempotent by content hash. Workers open the files by path, so on
a cluster of several machines the folder must be on storage every node mounts at the same path.

Needs the ``ray`` extra (``pip install 'instrec[ray]'``).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from PIL import Image

from instrec.config import Config, usable_cores
from instrec.enrolment import Enrolment, Prepared, embed_shots
from instrec.errors import InstrecError, TooManyImagesError
from instrec.images import LoadedImage, iter_image_files, load_images
from instrec.results import FolderReport
from instrec.rerank import LocalVerifier

if TYPE_CHECKING:
    from instrec.recognizer import Recognizer

BATCH = 4  # instances per actor call: large enough to amortise a call, small enough to keep both busy
_PLACEHOLDER = Image.new("RGB", (1, 1))  # what travels back instead of the pixels, which the driver never uses


class _Preparer:
    """One Ray actor: the model and the keypoint extractor, built once, prepare batches of instances."""

    def __init__(self, config: Config):
        from instrec.embedding.factory import create_embedder

        self.config = config
        self.embedder = create_embedder(config)
        self.verifier = LocalVerifier(config.tuning.rerank, config.rerank.vocabulary) if config.local_features else None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        prepared = []
        for instance_id, paths in zip(batch["instance_id"], batch["paths"]):
            loaded, errors = load_images(list(paths), self.config.limits, skip_bad=True)
            new_images, refused = embed_shots(self.embedder, self.verifier, loaded)
            light = [_without_pixels(image) for image in loaded]
            prepared.append(pickle.dumps((str(instance_id), errors, light, new_images, refused)))
        return {"prepared": prepared}


def _without_pixels(image: LoadedImage) -> LoadedImage:
    return replace(image, pixels=_PLACEHOLDER, size=(image.width, image.height), alpha=None)


def enroll_folder_on_ray(
    recognizer: Recognizer,
    root: str | Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> FolderReport:
    """Enrol ``root/<instance id>/<images>`` with ``workers`` actors (default: one per core of a local
    Ray, or per CPU of the cluster at ``address``)."""
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise InstrecError("enrolling with --ray needs the ray extra: pip install 'instrec[ray]'") from error
    root = Path(root)
    if not root.is_dir():
        raise InstrecError(f"{root} is not a folder")
    enrolment = Enrolment(recognizer.config, recognizer.library, recognizer.embedder)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows, held, already = _unsent(enrolment, folders)
    if not rows:
        report = enrolment.write_all(iter(()))
        report.instances, report.duplicates = held, already
        return report
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours is the one to show
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        size = workers or (int(ray.cluster_resources().get("CPU", 1)) if address else usable_cores())
        blocks = -(-len(rows) // BATCH)  # an actor with no block to work on would only be started and stopped
        results = (
            ray.data.from_items(rows, override_num_blocks=blocks)
            .map_batches(
                _Preparer,
                fn_constructor_args=(enrolment.config,),
                batch_size=BATCH,
                compute=ray.data.ActorPoolStrategy(size=max(1, min(size, blocks))),
                num_cpus=1,
            )
            .iter_rows()
        )
        report = enrolment.write_all(_with_known(enrolment, results), len(rows), progress)
    finally:
        if started_here:
            ray.shutdown()
    report.instances += held
    report.duplicates += already
    return report


def _unsent(enrolment: Enrolment, folders: list[Path]) -> tuple[list[dict[str, Any]], int, int]:
    """One row per instance with files whose content it does not hold yet; how many instances hold
    all of their files already, and how many files are held."""
    rows, held, already = [], 0, 0
    for folder in folders:
        known, files = enrolment.known(folder.name), list(iter_image_files(folder))
        paths = [str(p) for p in files if not known or _sha256(p) not in known]
        already += len(files) - len(paths)
        if paths:
            rows.append({"instance_id": folder.name, "paths": paths})
        elif files:
            held += 1
    return rows, held, already


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_known(enrolment: Enrolment, rows: Any) -> Iterator[Prepared]:
    """The workers' results as :meth:`Enrolment.write_all` takes them, with what each instance holds
    (read here, just before its write: the catalog is the driver's)."""
    for row in rows:
        instance_id, errors, loaded, new_images, refused = pickle.loads(row["prepared"])
        known = enrolment.known(instance_id)
        try:
            enrolment.check_room(instance_id, known, loaded)
        except TooManyImagesError as error:
            yield instance_id, errors, loaded, error
            continue
        yield instance_id, errors, loaded, (known, new_images, refused) if loaded else None
