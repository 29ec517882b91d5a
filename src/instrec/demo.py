"""A self-contained demo on real photos that ship inside scikit-image (no download).

One photo per instance is enrolled; the queries are views the engine has never seen — cropped,
rotated, occluded, re-lit — plus photos of things that were never enrolled, which must come back
"unknown".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance
from rich.console import Console
from rich.table import Table

from instrec.config import Config
from instrec.extras import require_extra

ENROLLED = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "camera",
    "clock",
    "coins",
    "logo",
    "page",
    "brick",
    "colorwheel",
    "moon",
)
NEVER_ENROLLED = ("cell", "text", "gravel")


def sample_photo(name: str) -> Image.Image:
    """An RGB photo from scikit-image's bundled samples."""
    require_extra("demo", "the demo")
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")  # every sample named here is 8-bit


def altered_views(photo: Image.Image, seed: int = 0) -> dict[str, Image.Image]:
    """Views of ``photo`` that a real query might be: partial, rotated, occluded, differently lit."""
    rng = np.random.default_rng(seed)
    w, h = photo.size
    x0, y0 = int(rng.uniform(0.05, 0.2) * w), int(rng.uniform(0.05, 0.2) * h)
    crop = photo.crop((x0, y0, x0 + int(0.7 * w), y0 + int(0.7 * h)))
    rotated = photo.rotate(float(rng.uniform(10, 20)), resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(128, 128, 128))
    occluded = photo.copy()
    ox, oy = int(rng.uniform(0, 0.6) * w), int(rng.uniform(0, 0.6) * h)
    ImageDraw.Draw(occluded).rectangle((ox, oy, ox + int(0.3 * w), oy + int(0.3 * h)), fill=(40, 40, 40))
    relit = ImageEnhance.Contrast(ImageEnhance.Brightness(photo).enhance(0.65)).enhance(1.3)
    return {"crop": crop, "rotated": rotated, "occluded": occluded, "relit": relit}


def _write_gallery(folder: Path) -> Path:
    """``folder/<name>/<name>.jpg`` — the layout ``instrec enroll`` reads."""
    for name in ENROLLED:
        photo = sample_photo(name)
        (folder / name).mkdir(parents=True, exist_ok=True)
        photo.save(folder / name / f"{name}.jpg", quality=92)
    return folder


def run_demo(config: Config, console: Console) -> dict[str, float]:
    from instrec.recognizer import Recognizer

    gallery = _write_gallery(config.home / "demo-gallery")
    with Recognizer(config) as recognizer:
        report = recognizer.enroll_folder(gallery)
        calibration = recognizer.calibrate()
        console.print(
            f"enrolled {report.images_added} new photos of {recognizer.gallery.count()} instances "
            f"(one shot each); 'unknown' threshold {calibration.threshold:.3f}"
        )
        table = Table("query", "truth", "answer", "score", "ms", "ok")
        correct = total = 0
        queries: list[tuple[str, str | None, Image.Image]] = [
            (f"{name} ({kind})", name, view)
            for name in ENROLLED
            for kind, view in altered_views(sample_photo(name), seed=len(name)).items()
        ]
        queries += [(f"{name} (never enrolled)", None, sample_photo(name)) for name in NEVER_ENROLLED]
        for title, truth, image in queries:
            result = recognizer.recognize(np.asarray(image), k=1)
            answer = "unknown" if result.unknown else result.matches[0].instance_id
            ok = answer == (truth or "unknown")
            correct += ok
            total += 1
            score = f"{result.matches[0].score:.3f}" if result.matches else "-"
            table.add_row(
                title,
                truth or "-",
                answer,
                score,
                f"{result.timing_ms['total']:.0f}",
                "[green]yes[/green]" if ok else "[red]no[/red]",
            )
        console.print(table)
        console.print(f"{correct}/{total} answered correctly")
    return {"correct": correct, "total": total}
