"""Turn the global shortlist into instance scores verified by geometry (the second stage, ``rerank``).

Candidates are the best ``tuning.rerank.shortlist`` gallery images by global similarity plus the best
``tuning.rerank.local_shortlist`` by local evidence (the local index finds objects the global descriptor
ranked low, e.g. a small product in a cluttered shelf photo). Each gets an exact cosine, its
RANSAC inliers and its colour similarity to the query photo, fused into one [0, 1]
score; an instance scores as its best image, and keeps the inlier evidence of its best-verified
image as a channel of its own (:func:`instrec.decision.against_competitors`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from instrec.decision import InstanceScore
from instrec.library import Library, SearchHits
from instrec.rerank import LocalFeatures, inlier_evidence
from instrec.rerank.colour import colour_similarity


@dataclass(frozen=True)
class VerifiedRanking:
    instances: list[InstanceScore]  # best first, by their best image's fused score
    images: list[tuple[int, int, float]]  # (image pk, instance pk, fused score) of every candidate, best first


def verified_ranking(
    library: Library,
    query: np.ndarray,
    features: LocalFeatures,
    hits: SearchHits,
) -> VerifiedRanking:
    """Candidates of the photo with global vector ``query`` and local ``features``, scored and
    grouped by instance (colour evidence where ``features`` has a colour signature)."""
    verifier = library.verifier
    if verifier is None:
        raise ValueError("verified ranking needs a library with local features (rerank.enabled)")
    catalog = library.catalog
    n = verifier.tuning.shortlist
    image_of = catalog.vectors.image_of(hits.vector_ids.tolist())
    cosine: dict[int, float] = {}
    vector_of: dict[int, int] = {}  # image -> one of its vectors (names the evidence for thumbnails)
    for score, vector_id in zip(hits.scores.tolist(), hits.vector_ids.tolist()):
        image = image_of.get(vector_id)
        if image is not None and image not in cosine and len(cosine) < n:
            cosine[image], vector_of[image] = score, vector_id
    n_local = verifier.tuning.local_shortlist
    local_hits = [image for image, _ in library.local_search([features], n_local)[0]] if n_local else []
    _exact_cosines(library, query, [i for i in local_hits if i not in cosine], cosine, vector_of)
    candidates = list(cosine)
    stored = catalog.features.of_images(candidates)
    instance_of = {i: inst for i, (inst, _) in stored.items()}
    instance_of.update(catalog.instance_of_images([i for i in candidates if i not in instance_of]))
    unpacked = {i: LocalFeatures.unpack(data) for i, (_, data) in stored.items()}
    colour = None if features.colour is None else _colour_similarities(features.colour, unpacked)
    scored = verifier.score(features, unpacked, cosine, instance_of, colour)
    fused, inliers = scored.fused, scored.inliers
    best: dict[int, InstanceScore] = {}
    geometry: dict[int, float] = {}  # per instance, the inlier evidence of its best-verified image
    images = []
    for image in sorted(fused, key=lambda i: (-fused[i], i)):
        instance = instance_of.get(image)
        if instance is None:  # removed meanwhile
            continue
        images.append((image, instance, fused[image]))
        geometry[instance] = max(geometry.get(instance, 0.0), inlier_evidence(inliers[image], verifier.tuning))
        if instance not in best:
            best[instance] = InstanceScore(instance, fused[image], vector_of[image], inliers[image], box=scored.boxes.get(image))
    instances = [dataclasses.replace(s, geometry=geometry[s.instance_pk]) for s in best.values()]
    return VerifiedRanking(instances, images)


def _exact_cosines(
    library: Library, query: np.ndarray, images: list[int], cosine: dict[int, float], vector_of: dict[int, int]
) -> None:
    """Fill in the global similarity of images the global search did not return."""
    per_image = library.catalog.vectors.of_images(images)
    image_of = {v: image for image, ids in per_image.items() for v in ids}
    ids, _, vectors = library.catalog.vectors.by_pk(sorted(image_of), library.dim)
    similarities = vectors @ query
    for vector_id, similarity in zip(ids.tolist(), similarities.tolist()):
        image = image_of[vector_id]
        if similarity > cosine.get(image, -np.inf):
            cosine[image], vector_of[image] = similarity, vector_id


def _colour_similarities(query: np.ndarray, candidates: dict[int, LocalFeatures]) -> dict[int, float]:
    """Per candidate with a colour signature, its colour similarity to the query's signature."""
    out = {}
    for image, features in candidates.items():
        similarity = None if features.colour is None else colour_similarity(query, features.colour)
        if similarity is not None:
            out[image] = similarity
    return out
