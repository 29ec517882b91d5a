"""Query photos through both stages: embed, search, find keypoints, verify; and the gallery images
behind an answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

from instrec.decision import InstanceScore, rank_instances
from instrec.library import Library, SearchHits
from instrec.query.verified import verified_ranking
from instrec.results import ImageHit

InParallel = Callable[[Callable[[], Any]], Callable[[], Any]]


@dataclass(frozen=True)
class RankedPhotos:
    """Per photo: its instances ranked by score before the decision, its search hits and its verified
    images (image pk, instance pk, fused score); and the time each stage took per photo (ms)."""

    instances: list[list[InstanceScore]]
    hits: list[SearchHits]
    verified: list[list[tuple[int, int, float]]]
    per_image_ms: dict[str, float]


def rank_photos(
    library: Library,
    embed: Callable[[list[Image.Image]], np.ndarray],
    pixels: list[Image.Image],
    shortlist: int,
    in_parallel: InParallel,
) -> RankedPhotos:
    """``shortlist`` image neighbours per photo; ``in_parallel`` may find the keypoints while the
    network runs (``Recognizer._in_parallel``)."""
    n = len(pixels)
    t1 = time.perf_counter()
    verifier = library.verifier
    keypoints = None if verifier is None else in_parallel(lambda: [verifier.extract_query(image) for image in pixels])
    vectors = embed(pixels)
    t2 = time.perf_counter()
    # Photo by photo, not the batch at once: FAISS picks its BLAS path by batch size, and a photo must
    # score the same alone as in a batch (the threshold sits one ulp above a score).
    hits = [library.search(row[None], shortlist)[0] for row in vectors]
    t3 = time.perf_counter()
    per_image = {"embed": (t2 - t1) * 1e3 / n, "search": (t3 - t2) * 1e3 / n}
    if keypoints is None:
        ranked = [rank_instances(h.scores, h.vector_ids, h.instance_pks) for h in hits]
        per_image["search"] += (time.perf_counter() - t3) * 1e3 / n
        return RankedPhotos(ranked, hits, [[] for _ in hits], per_image)
    features = keypoints()
    t4 = time.perf_counter()
    rankings = [verified_ranking(library, q, f, h) for q, f, h in zip(vectors, features, hits)]
    per_image["local_features"] = (t4 - t3) * 1e3 / n  # in parallel: what the embedding did not hide
    per_image["verify"] = (time.perf_counter() - t4) * 1e3 / n
    return RankedPhotos([r.instances for r in rankings], hits, [r.images for r in rankings], per_image)


def image_hits(library: Library, hits: SearchHits, verified: list[tuple[int, int, float]]) -> list[ImageHit]:
    """Gallery images best first: verified candidates by fused score, then the rest by cosine."""
    catalog = library.catalog
    image_of = catalog.vectors.image_of(hits.vector_ids.tolist())
    instances = catalog.instances_by_pk(sorted(set(hits.instance_pks.tolist()) | {i for _, i, _ in verified}))
    seen: set[int] = set()
    out = []
    for verified_id, instance_pk, score in verified:
        if instance_pk in instances:
            seen.add(verified_id)
            out.append(ImageHit(verified_id, instances[instance_pk].id, score))
    for score, vector_id, instance_pk in zip(hits.scores.tolist(), hits.vector_ids.tolist(), hits.instance_pks.tolist()):
        image_id = image_of.get(vector_id)
        if image_id is None or image_id in seen or instance_pk not in instances:
            continue
        seen.add(image_id)
        out.append(ImageHit(image_id, instances[instance_pk].id, score))
    return out
